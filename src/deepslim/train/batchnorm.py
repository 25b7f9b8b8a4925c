"""Re-estimate BatchNorm statistics after surgery (pruning, factorization) changed what flows in."""

from __future__ import annotations

import torch
from torch import nn

from ..core import train_mode
from ..core.inputs import batch_size as samples_in
from ..core.inputs import call_model, slice_batch

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def recalibrate_batchnorm_(model: nn.Module, images, batch_size: int = 128) -> int:
    """Recompute every BN layer's running mean/variance as exact averages over ``images``.

    ``images`` is a tensor or, for a model with other inputs, a tuple or dict of tensors
    (``core.inputs``), read ``batch_size`` samples at a time.
    Weights are not touched. Returns the number of BN layers recalibrated.

    Example:
        >>> import deepslim, torch
        >>> recalibrate_batchnorm_(deepslim.create_model("resnet8"), torch.randn(64, 1, 28, 28))
        9
    """
    norms = [m for m in model.modules() if isinstance(m, _NORMS) and m.track_running_stats]
    n = len(images) if isinstance(images, torch.Tensor) else samples_in(images)
    if not norms or n == 0:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with train_mode(model):
            for start in range(0, n, batch_size):
                if isinstance(images, torch.Tensor):
                    model(images[start:start + batch_size].to(device))
                else:
                    call_model(model, slice_batch(images, start + batch_size, start))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return len(norms)
