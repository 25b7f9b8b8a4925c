"""Pruning: unstructured masks, N:M, and structured channel removal."""

from .api import PruningPlan, prune_
from .config import ChannelPruning, MagnitudePruning, NMSparsity, RandomPruning
from .masks import KeepMasked, MaskSet

__all__ = ["ChannelPruning", "KeepMasked", "MagnitudePruning", "MaskSet", "NMSparsity", "PruningPlan",
           "RandomPruning", "prune_"]
