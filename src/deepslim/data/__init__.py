"""Data sets (a registry) and in-memory batch loading."""

from . import debian, fashion_mnist, synthetic  # noqa: F401  (registers the data sets)
from .loader import Augment, BatchLoader
from .registry import DATASETS, list_datasets, load_dataset, register_dataset
from .splits import DataSplits, TensorData
from .text import TextPairs, TextSplits

__all__ = ["Augment", "BatchLoader", "DATASETS", "DataSplits", "TensorData", "list_datasets", "load_dataset",
           "register_dataset", "TextPairs", "TextSplits"]
