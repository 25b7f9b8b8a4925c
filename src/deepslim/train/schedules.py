"""Learning-rate schedules as pure functions of the step.

Written as functions rather than ``torch.optim.lr_scheduler`` objects because a
stateless ``lr = f(step)`` makes resuming from a checkpoint exact with nothing to save.
"""

from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str, warmup_steps: int = 0) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``.

    ``cosine``: linear warm-up then cosine decay to 0. ``onecycle``: Smith & Topin's
    one-cycle (cosine up from base/25 to base over 30% of training, cosine down to
    base/1e4). ``constant``: warm-up then flat.

    Example:
        >>> lr_at(0, 100, 0.1, "cosine")
        0.1
    """
    total_steps = max(1, total_steps)
    if schedule == "onecycle":
        peak = max(1, int(0.3 * total_steps))
        start, end = base_lr / 25, base_lr / 1e4
        if step < peak:
            return start + (base_lr - start) * (1 - math.cos(math.pi * step / peak)) / 2
        t = (step - peak) / max(1, total_steps - peak)
        return end + (base_lr - end) * (1 + math.cos(math.pi * min(1.0, t))) / 2
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return base_lr * (1 + math.cos(math.pi * min(1.0, t))) / 2
    raise ValueError(f"unknown schedule {schedule!r}")
