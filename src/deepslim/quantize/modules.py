"""Fake-quantized layers: a conv or linear whose weights and input are quantized in float.

They simulate integer inference in PyTorch (what ``deepslim.load`` gives back for a
quantized model) and, with learnable step sizes, are what quantization-aware training
trains (LSQ, Esser et al., 2020). Integer execution itself happens in ONNX Runtime.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core import SerializableModule
from .primitives import fake_quantize, qrange, weight_scales


def _grad_scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Value of x, gradient scaled by ``factor`` (LSQ's step-size gradient scaling)."""
    return (x - x * factor).detach() + x * factor


class QuantLayer(SerializableModule):
    """Wraps a conv/linear: per-channel symmetric ``weight_bits`` weights, uint8 (``act_bits``) inputs.

    Scales are buffers set by calibration; with ``learnable=True`` they are parameters
    trained with LSQ's scaled gradients. ``kind`` is ``conv`` or ``linear``; the wrapped
    layer is the child ``layer``.
    """

    def __init__(self, kind: str, out_channels: int, weight_bits: int = 8, act_bits: int = 8,
                 learnable: bool = False, quantize_input: bool = True):
        super().__init__()
        self.kind, self.weight_bits, self.act_bits = kind, weight_bits, act_bits
        self.learnable, self.quantize_input = learnable, quantize_input
        self.layer: nn.Module = nn.Identity()
        w_scale = torch.ones(out_channels)
        a_scale, a_zero = torch.tensor(1.0), torch.tensor(0.0)
        if learnable:
            self.weight_scale = nn.Parameter(w_scale)
            self.act_scale = nn.Parameter(a_scale)
        else:
            self.register_buffer("weight_scale", w_scale)
            self.register_buffer("act_scale", a_scale)
        self.register_buffer("act_zero_point", a_zero)

    @classmethod
    def wrap(cls, layer: nn.Module, weight_bits: int = 8, act_bits: int = 8, learnable: bool = False,
             act_range: tuple[float, float] | None = None) -> "QuantLayer":
        kind = "linear" if isinstance(layer, nn.Linear) else "conv"
        wrapper = cls(kind, layer.weight.shape[0], weight_bits, act_bits, learnable, act_range is not None or learnable)
        wrapper.to(layer.weight.device)  # the scales live with the weights (a no-op on CPU)
        wrapper.layer = layer
        with torch.no_grad():
            wrapper.weight_scale.copy_(weight_scales(layer.weight, weight_bits))
            if act_range is not None:
                wrapper.set_act_range(*act_range)
        return wrapper

    @torch.no_grad()
    def set_act_range(self, low: float, high: float) -> None:
        qmin, qmax = qrange(self.act_bits, signed=False)
        low, high = min(low, 0.0), max(high, 0.0)
        scale = max((high - low) / (qmax - qmin), 1e-8)
        self.act_scale.copy_(torch.tensor(scale))
        self.act_zero_point.copy_(torch.tensor(float(min(max(round(qmin - low / scale), qmin), qmax))))
        self.quantize_input = True

    def quantized_weight(self) -> torch.Tensor:
        qmin, qmax = qrange(self.weight_bits, signed=True, narrow=True)
        scale = self.weight_scale.abs() + 1e-12
        if self.learnable:
            scale = _grad_scale(scale, 1.0 / math.sqrt(self.layer.weight[0].numel() * max(qmax, 1)))
        return fake_quantize(self.layer.weight, scale, 0, qmin, qmax, axis=0)

    def forward(self, x):
        if self.quantize_input:
            qmin, qmax = qrange(self.act_bits, signed=False)
            scale = self.act_scale.abs() + 1e-12
            if self.learnable:
                scale = _grad_scale(scale, 1.0 / math.sqrt(x[0].numel() * qmax))
            x = fake_quantize(x, scale, self.act_zero_point, qmin, qmax)
        w = self.quantized_weight()
        layer = self.layer
        if self.kind == "linear":
            return F.linear(x, w, layer.bias)
        return layer._conv_forward(x, w, layer.bias)
