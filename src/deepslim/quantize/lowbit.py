"""Binary and ternary networks, trained with the straight-through estimator.

- Binary weights (XNOR-Net, Rastegari et al., 2016): W_b = alpha * sign(W), alpha = mean |W| per
  output channel; optionally binary activations sign(x) (gradient passed where |x| <= 1).
- Ternary weights (TWN, Li et al., 2016): delta = 0.7 * mean |W|, W_t = alpha * sign(W) on
  |W| > delta and 0 elsewhere, alpha = mean |W| over the kept weights.

The float "latent" weights are what the optimizer updates. ``freeze_lowbit_`` replaces them
by their binary/ternary values (the layer's output does not change), after which
``deepslim.save`` stores each weight in 1 or 2 bits plus a per-channel codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core import Config, DeepslimError, SerializableModule, set_submodule
from ..prune.select import PRUNABLE, classifier_head


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class _PassThrough(torch.autograd.Function):
    """Forward ``value``, backward as if it were ``latent`` (the STE for weights)."""

    @staticmethod
    def forward(ctx, latent, value):
        return value

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def binarize_weight(w: torch.Tensor) -> torch.Tensor:
    alpha = w.abs().reshape(w.shape[0], -1).mean(dim=1).reshape([-1] + [1] * (w.ndim - 1))
    return alpha * torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))


def ternarize_weight(w: torch.Tensor) -> torch.Tensor:
    flat = w.abs().reshape(w.shape[0], -1)
    delta = 0.7 * flat.mean(dim=1, keepdim=True)
    keep = flat > delta
    alpha = (flat * keep).sum(dim=1, keepdim=True) / keep.sum(dim=1, keepdim=True).clamp(min=1)
    return (torch.sign(w).reshape(w.shape[0], -1) * keep * alpha).reshape(w.shape)


class LowBitLayer(SerializableModule):
    """A conv/linear (child ``layer``) with binary or ternary weights and optionally binary inputs."""

    def __init__(self, kind: str, mode: str = "binary", binary_activations: bool = False):
        super().__init__()
        if mode not in ("binary", "ternary"):
            raise DeepslimError(f"low-bit mode '{mode}' is not supported", hint="use binary or ternary")
        self.kind, self.mode, self.binary_activations = kind, mode, binary_activations
        self.layer: nn.Module = nn.Identity()

    def effective_weight(self) -> torch.Tensor:
        w = self.layer.weight
        value = binarize_weight(w.detach()) if self.mode == "binary" else ternarize_weight(w.detach())
        return _PassThrough.apply(w, value) if w.requires_grad and torch.is_grad_enabled() else value

    def forward(self, x):
        if self.binary_activations:
            x = _SignSTE.apply(x)
        w = self.effective_weight()
        if self.kind == "linear":
            return F.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)


@dataclass
class LowBitConfig(Config):
    """Which low-bit form, and whether to keep the first and last layers in float (customary:
    they are small and the most sensitive)."""

    mode: str = "binary"
    binary_activations: bool = False
    keep_first_and_last: bool = True

    def __post_init__(self):
        self.check_choice("mode", ("binary", "ternary"))


def lowbit_(model: nn.Module, config: LowBitConfig) -> list[str]:
    """Wrap the model's conv/linear layers in place; returns the wrapped layer names.

    Example:
        >>> import deepslim
        >>> model = deepslim.create_model("fmnist-cnn")
        >>> lowbit_(model, LowBitConfig(mode="ternary"))
        ['2.0', '4.0', '7']
    """
    names = [n for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
    if config.keep_first_and_last and len(names) > 2:
        names = [n for n in names[1:] if n != classifier_head(model)]
    modules = dict(model.named_modules())
    for name in names:
        layer = modules[name]
        wrapper = LowBitLayer("linear" if isinstance(layer, nn.Linear) else "conv", config.mode, config.binary_activations)
        wrapper.layer = layer
        set_submodule(model, name, wrapper)
    return names


@torch.no_grad()
def freeze_lowbit_(model: nn.Module) -> int:
    """Replace latent weights by their binary/ternary values (outputs unchanged); returns how many layers."""
    count = 0
    for module in model.modules():
        if isinstance(module, LowBitLayer):
            module.layer.weight.copy_(module.effective_weight())
            count += 1
    return count
