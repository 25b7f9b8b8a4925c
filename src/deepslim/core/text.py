"""Small wording helpers for messages people read."""

from __future__ import annotations


def plural(n: int | float, word: str, many: str | None = None) -> str:
    """``n`` and ``word``, with the plural form unless ``n`` is exactly one; thousands get commas.

    Example:
        >>> plural(1, "epoch"), plural(2, "epoch"), plural(55000, "image"), plural(0, "entry", "entries")
        ('1 epoch', '2 epochs', '55,000 images', '0 entries')
    """
    count = f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else f"{n:g}"
    return f"{count} {word if n == 1 else (many or word + 's')}"
