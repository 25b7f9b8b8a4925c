"""Progress bars (tqdm), silenced globally by ``set_quiet(True)`` (``--quiet``)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    return _QUIET


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, leave: bool = False) -> Iterable[T]:
    """Wrap an iterable in a progress bar on stderr; no bar when quiet or not a terminal.

    Example:
        >>> for batch in progress(range(3), desc="train"):
        ...     pass
    """
    disable = _QUIET or not sys.stderr.isatty()
    # Some terminals (a fresh pseudo-terminal, `docker exec -t`, some IDE consoles) report a size of 0x0,
    # and tqdm then draws nothing at all: give those a fixed 80x20 instead of following the size.
    sized = min(_terminal_size()) > 0
    return tqdm(iterable, desc=desc, total=total, leave=leave, disable=disable, dynamic_ncols=sized,
                ncols=None if sized else 80, nrows=None if sized else 20)


def _terminal_size() -> tuple[int, int]:
    try:
        return tuple(os.get_terminal_size(sys.stderr.fileno()))
    except (AttributeError, OSError, ValueError):  # not a real file (tests' capture) or not a terminal
        return (0, 0)


def log(message: str) -> None:
    """A status line on stderr (kept out of stdout so ``--json`` output stays clean)."""
    if not _QUIET:
        print(message, file=sys.stderr, flush=True)
