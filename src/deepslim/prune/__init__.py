"""Pruning: unstructured masks, N:M, and structured channel removal."""

from .api import PruningPlan, prune_
from .config import ChannelPruning, MagnitudePruning, NMSparsity, RandomPruning
from .masks import KeepMasked, MaskSet
from .schedules import AGPSchedule, GradualPruning, iterative_prune

__all__ = ["AGPSchedule", "ChannelPruning", "GradualPruning", "iterative_prune", "KeepMasked", "MagnitudePruning", "MaskSet", "NMSparsity", "PruningPlan",
           "RandomPruning", "prune_"]
