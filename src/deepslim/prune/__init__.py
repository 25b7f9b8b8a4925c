"""Pruning: unstructured masks, N:M, and structured removal of channels, attention heads, FFN neurons, layers and blocks."""

from .adaptive import AdaptiveResult, adaptive_prune_
from .api import PruningPlan, prune_
from .attention import SplitMultiheadAttention, split_multihead_attention_
from .blocks import drop_blocks, droppable_blocks
from .config import (
           BlockDropping,
           ChannelPruning,
           FFNPruning,
           HeadPruning,
           LayerDropping,
           MagnitudePruning,
           NMSparsity,
           RandomPruning,
)
from .layers import drop_layers, layer_stacks
from .lottery import LotteryConfig, find_lottery_ticket
from .masks import KeepMasked, MaskSet
from .probing import coupled_groups, short_finetune
from .schedules import AGPSchedule, GradualPruning, iterative_prune
from .sensitivity import SensitivityResult, prune_to_budget, ratios_for_budget, sensitivity_scan

__all__ = ["AdaptiveResult", "BlockDropping", "drop_blocks", "droppable_blocks", "adaptive_prune_", "coupled_groups", "short_finetune", "AGPSchedule", "ChannelPruning",
           "FFNPruning", "GradualPruning", "HeadPruning", "LotteryConfig", "find_lottery_ticket", "iterative_prune",
           "KeepMasked", "LayerDropping", "drop_layers", "layer_stacks", "MagnitudePruning", "MaskSet", "NMSparsity", "PruningPlan",
           "RandomPruning", "SensitivityResult", "SplitMultiheadAttention", "prune_", "prune_to_budget",
           "ratios_for_budget", "sensitivity_scan", "split_multihead_attention_"]
