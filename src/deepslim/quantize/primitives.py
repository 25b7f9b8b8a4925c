"""Uniform affine quantization: scales and zero points, quantize / dequantize, fake-quant with STE.

Conventions (those of ONNX QuantizeLinear and ONNX Runtime's int8 kernels):
q = clamp(round(x / scale) + zero_point, qmin, qmax), x' = (q - zero_point) * scale.
Weights: symmetric, signed (zero_point 0), per output channel. Activations: asymmetric
unsigned 8-bit (uint8) per tensor.
"""

from __future__ import annotations

import torch

from ..core import DeepslimError


def qrange(bits: int, signed: bool, narrow: bool = False) -> tuple[int, int]:
    """Integer range of a ``bits``-bit type; ``narrow`` drops the most negative value (symmetric weights).

    Example:
        >>> qrange(8, True, narrow=True), qrange(8, False), qrange(4, True, narrow=True)
        ((-127, 127), (0, 255), (-7, 7))
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise DeepslimError(f"bit-width {bits!r} is not supported", hint="use an integer from 1 to 8")
    if signed:
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return (low + 1 if narrow and bits > 1 else low), high
    return 0, 2**bits - 1


def symmetric_scale(max_abs: torch.Tensor, bits: int) -> torch.Tensor:
    """Scale mapping [-max_abs, max_abs] onto the narrow signed range (zero point 0)."""
    _, qmax = qrange(bits, signed=True, narrow=True)
    return torch.clamp(max_abs, min=1e-12) / max(qmax, 1)


def weight_scales(weight: torch.Tensor, bits: int = 8, per_channel: bool = True) -> torch.Tensor:
    """Symmetric per-output-channel (dim 0) or per-tensor scales from the weight's max |w|.

    Example:
        >>> weight_scales(torch.tensor([[1.0, -2.0], [0.5, 0.25]]), bits=8)
        tensor([0.0157, 0.0039])
    """
    if per_channel:
        max_abs = weight.detach().abs().reshape(weight.shape[0], -1).amax(dim=1)
    else:
        max_abs = weight.detach().abs().max().reshape(1)
    return symmetric_scale(max_abs, bits)


def affine_params(low: torch.Tensor | float, high: torch.Tensor | float, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Unsigned scale and integer zero point covering [low, high] (always including 0, so zero is exact).

    Example:
        >>> scale, zp = affine_params(-1.0, 3.0, bits=8)
        >>> round(float(scale), 5), int(zp)
        (0.01569, 64)
    """
    qmin, qmax = qrange(bits, signed=False)
    low = torch.clamp(torch.as_tensor(low, dtype=torch.float32), max=0.0)
    high = torch.clamp(torch.as_tensor(high, dtype=torch.float32), min=0.0)
    scale = torch.clamp((high - low) / (qmax - qmin), min=1e-12)
    zero_point = torch.clamp(torch.round(qmin - low / scale), qmin, qmax).to(torch.int64)
    return scale, zero_point


def _broadcast(t: torch.Tensor, like: torch.Tensor, axis: int | None) -> torch.Tensor:
    if axis is None or t.numel() == 1:
        return t.reshape(())
    shape = [1] * like.ndim
    shape[axis] = -1
    return t.reshape(shape)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | int, qmin: int, qmax: int,
             axis: int | None = None) -> torch.Tensor:
    """Integer codes (as int64) of ``x``."""
    s = _broadcast(torch.as_tensor(scale, dtype=x.dtype, device=x.device), x, axis)
    z = _broadcast(torch.as_tensor(zero_point, device=x.device), x, axis)
    return torch.clamp(torch.round(x / s) + z, qmin, qmax).to(torch.int64)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | int, axis: int | None = None) -> torch.Tensor:
    s = _broadcast(torch.as_tensor(scale, dtype=torch.float32, device=q.device), q, axis)
    z = _broadcast(torch.as_tensor(zero_point, device=q.device), q, axis)
    return (q - z).to(torch.float32) * s


class _RoundSTE(torch.autograd.Function):
    """round() whose gradient is the identity (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | int, qmin: int, qmax: int,
                  axis: int | None = None) -> torch.Tensor:
    """Quantize then dequantize in float, differentiable through the STE (gradient 0 where clamped).

    ``scale`` may be a learnable tensor (LSQ); its gradient flows through the division.
    """
    s = _broadcast(scale.to(x.dtype) if torch.is_tensor(scale) else torch.tensor(scale, dtype=x.dtype), x, axis)
    z = _broadcast(torch.as_tensor(zero_point, device=x.device).to(x.dtype), x, axis)
    q = torch.clamp(_RoundSTE.apply(x / s) + z, qmin, qmax)
    return (q - z) * s
