"""Empirical bias correction (Nagel et al., 2019): remove the mean output shift that weight
quantization causes, using the mean of each layer's input over a little data.

E[y_q - y] = (W_q - W) E[x], so each layer's bias becomes b - (W_q - W) E[x].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.inputs import call_model
from .modules import QuantLayer


@torch.no_grad()
def input_means(model: nn.Module, names: list[str], batches) -> dict[str, torch.Tensor]:
    """Mean input (per input channel; per feature for Linear) of each named module, over ``batches``:
    an image tensor (run 64 at a time) or a list of input batches of any form (``core.inputs``)."""
    if isinstance(batches, torch.Tensor):
        batches = [batches[start:start + 64] for start in range(0, len(batches), 64)]
    modules = dict(model.named_modules())
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def record(module, inputs):
            x = inputs[0]
            if x.ndim > 2 and not isinstance(module, nn.Linear):  # conv: channels are dim 1
                per = x.sum(dim=[0] + list(range(2, x.ndim)))
            else:  # a Linear's features are its last dim, e.g. (batch, tokens, features)
                per = x.reshape(-1, x.shape[-1]).sum(0)
            n = x.numel() // per.numel()
            sums[name] = sums.get(name, 0) + per
            counts[name] = counts.get(name, 0) + n
        return record

    handles = [modules[n].register_forward_pre_hook(hook(n)) for n in names]
    try:
        for inputs in batches:
            call_model(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return {n: sums[n] / counts[n] for n in sums}


def _output_shift(layer: nn.Module, delta: torch.Tensor, mean: torch.Tensor) -> torch.Tensor | None:
    """(W_q - W) E[x] per output channel; None for layers other than Linear / Conv2d."""
    mean = mean.to(delta.dtype)
    if isinstance(layer, nn.Linear):
        return delta @ mean
    if isinstance(layer, nn.Conv2d):
        # a constant input equal to the channel means, through the conv (no padding), gives the shift
        x = mean.reshape(1, -1, 1, 1).expand(1, -1, *delta.shape[2:])
        return F.conv2d(x, delta, groups=layer.groups).reshape(-1)
    return None


def _subtract_from_bias(layer: nn.Module, shift: torch.Tensor) -> None:
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros_like(shift))
    layer.bias.sub_(shift)


@torch.no_grad()
def correct_biases_(model: nn.Module, means: dict[str, torch.Tensor]) -> int:
    """Adjust the bias of every ``QuantLayer`` whose float input mean is in ``means``; returns how many."""
    done = 0
    for name, module in model.named_modules():
        if isinstance(module, QuantLayer) and name in means:
            shift = _output_shift(module.layer, module.quantized_weight() - module.layer.weight, means[name])
            if shift is not None:
                _subtract_from_bias(module.layer, shift)
                done += 1
    return done


@torch.no_grad()
def correct_float_biases_(model: nn.Module, means: dict[str, torch.Tensor], bits: int = 8) -> int:
    """Pre-correct a float model's biases for the per-channel symmetric ``bits``-bit weight
    quantization that will be applied later (e.g. by ONNX Runtime's quantizer, which rounds
    weights the same way)."""
    from .primitives import fake_quantize, qrange, weight_scales

    modules = dict(model.named_modules())
    qmin, qmax = qrange(bits, signed=True, narrow=True)
    done = 0
    for name, mean in means.items():
        layer = modules[name]
        delta = fake_quantize(layer.weight, weight_scales(layer.weight, bits), 0, qmin, qmax, axis=0) - layer.weight
        shift = _output_shift(layer, delta, mean)
        if shift is not None:
            _subtract_from_bias(layer, shift)
            done += 1
    return done
