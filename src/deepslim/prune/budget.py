"""The uniform channel-pruning ratio that meets a MAC budget.

Channel counts are integers (and multiples of ``round_to`` when set), so the MACs of a pruned
model move in steps as the ratio grows; bisection on measured copies finds the smallest ratio
whose model fits the budget, i.e. the model closest to the budget from below.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from torch import nn

from .api import prune_
from .config import ChannelPruning


def uniform_ratio_for_macs(model: nn.Module, target_macs: float, example_inputs,
                           config: ChannelPruning | None = None, *, data=None, iterations: int = 14,
                           high: float = 0.95) -> float | None:
    """Smallest ``ratio`` of ``config`` (default: L2, per layer) whose pruned copy of ``model`` has
    at most ``target_macs`` MACs, by bisection in [0, ``high``]; ``None`` if even ``high`` keeps more.
    ``model`` itself is not changed.

    Example:
        >>> import deepslim, torch
        >>> model, x = deepslim.create_model("resnet8"), torch.randn(1, 1, 28, 28)
        >>> macs = deepslim.profile(model, x).macs
        >>> ratio = uniform_ratio_for_macs(model, 0.5 * macs, x)
        >>> prune_(model, ChannelPruning(ratio=ratio), example_inputs=x).macs_after <= 0.5 * macs
        True
    """
    config = config or ChannelPruning(importance="l2")
    top = prune_(copy.deepcopy(model), replace(config, ratio=high), example_inputs=example_inputs, data=data)
    if top.macs_after > target_macs:  # bisection never tries ``high`` itself; nothing below it can fit either
        return None
    low, best = 0.0, high
    for _ in range(iterations):
        mid = (low + high) / 2
        plan = prune_(copy.deepcopy(model), replace(config, ratio=mid), example_inputs=example_inputs, data=data)
        if plan.macs_after <= target_macs:
            best, high = mid, mid
        else:
            low = mid
    return best
