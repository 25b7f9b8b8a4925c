"""Pruning: unstructured masks, N:M, and structured channel removal."""

from .adaptive import AdaptiveResult, adaptive_prune_
from .api import PruningPlan, prune_
from .config import ChannelPruning, MagnitudePruning, NMSparsity, RandomPruning
from .lottery import LotteryConfig, find_lottery_ticket
from .masks import KeepMasked, MaskSet
from .probing import coupled_groups, short_finetune
from .schedules import AGPSchedule, GradualPruning, iterative_prune
from .sensitivity import SensitivityResult, prune_to_budget, ratios_for_budget, sensitivity_scan

__all__ = ["AdaptiveResult", "adaptive_prune_", "coupled_groups", "short_finetune", "AGPSchedule", "ChannelPruning", "GradualPruning", "LotteryConfig", "find_lottery_ticket", "iterative_prune", "KeepMasked", "MagnitudePruning", "MaskSet", "NMSparsity", "PruningPlan",
           "RandomPruning", "SensitivityResult", "prune_", "prune_to_budget",
           "ratios_for_budget", "sensitivity_scan"]
