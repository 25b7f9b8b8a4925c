"""Re-estimate BatchNorm statistics after surgery (pruning, factorization) changed what flows in."""

from __future__ import annotations

import torch
from torch import nn

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def recalibrate_batchnorm_(model: nn.Module, images: torch.Tensor, batch_size: int = 128) -> int:
    """Recompute every BN layer's running mean/variance as exact averages over ``images``.

    Weights are not touched. Returns the number of BN layers recalibrated.

    Example:
        >>> import deepslim, torch
        >>> recalibrate_batchnorm_(deepslim.create_model("resnet8"), torch.randn(64, 1, 28, 28))
        9
    """
    norms = [m for m in model.modules() if isinstance(m, _NORMS) and m.track_running_stats]
    if not norms or len(images) == 0:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.train()
    try:
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size].to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)
