"""The data set registry: ``load_dataset(name, **options)`` and ``list_datasets()``."""

from __future__ import annotations

from ..core import DeepslimError, Registry
from .splits import DataSplits
from .text import TextSplits

DATASETS: Registry = Registry("data set")
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    """Names of every registered data set.

    Example:
        >>> "fashion-mnist" in list_datasets()
        True
    """
    return DATASETS.names()


def load_dataset(name: str, *, subset: int | None = None, val_fraction: float = 1 / 12, seed: int = 0,
                 **options) -> DataSplits | TextSplits:
    """Load a registered data set as train/val/test splits, held in memory and normalised.

    ``subset`` keeps only that many training images (for fast tests); the test split is
    always whole. The validation split is carved from the training pool with ``seed``.
    Text data sets (registered with a ``task``, e.g. ``debian-descriptions``) return ``TextSplits``.

    Example:
        >>> data = load_dataset("synthetic", subset=256)
        >>> data.input_shape
        (1, 28, 28)
    """
    factory = DATASETS.get(name)
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 2):
        raise DeepslimError(f"subset must be an integer >= 2, got {subset!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise DeepslimError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    return factory(subset=subset, val_fraction=val_fraction, seed=seed, **options)
