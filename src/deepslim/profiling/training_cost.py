"""What training a model costs: FLOPs of one step (forward + backward) and a planned run."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..core import train_mode
from .formulas import EXTRA_FORMULAS


def training_step_flops(model: nn.Module, batch: torch.Tensor, num_classes: int | None = None) -> int:
    """Matmul/conv-family FLOPs of one training step (forward, cross-entropy, backward) on ``batch``.
    The model is left as it was: its modes, and its buffers (a forward in training mode would move
    BatchNorm's running statistics).

    Example:
        >>> training_step_flops(nn.Linear(8, 4), torch.randn(2, 8))  # forward 2*64 + weight gradient 2*64
        256
    """
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        with train_mode(model), counter:
            logits = model(batch)
            targets = torch.zeros(len(batch), dtype=torch.long, device=batch.device)
            F.cross_entropy(logits, targets).backward()
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, saved in buffers.items():
                model.get_buffer(name).copy_(saved)
    return counter.get_total_flops()


def time_training_steps(model: nn.Module, batch: torch.Tensor, steps: int = 5, warmup: int = 2) -> float:
    """Median seconds of one SGD training step on ``batch`` (weights and modes are restored afterwards)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    targets = torch.zeros(len(batch), dtype=torch.long, device=batch.device)
    times = []
    try:
        with train_mode(model):
            for i in range(warmup + steps):
                t0 = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(batch), targets).backward()
                optimizer.step()
                if batch.device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
    finally:
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
    times.sort()
    return times[len(times) // 2]
