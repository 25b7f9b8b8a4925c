"""Pruning masks: computed once, kept through training, made permanent or stored compactly."""

from __future__ import annotations

import torch
from torch import nn

from ..train.callbacks import Callback


class MaskSet:
    """Binary masks for the ``weight`` of named layers.

    Example:
        >>> lin = nn.Linear(4, 2)
        >>> masks = MaskSet({"": torch.tensor([[1., 0, 1, 0], [0, 1, 0, 1]])})
        >>> masks.apply(lin)
        >>> int((lin.weight == 0).sum())
        4
    """

    def __init__(self, masks: dict[str, torch.Tensor] | None = None):
        self.masks: dict[str, torch.Tensor] = {k: v.bool() for k, v in (masks or {}).items()}

    def __len__(self) -> int:
        return len(self.masks)

    def _weights(self, model: nn.Module):
        modules = dict(model.named_modules())
        for name, mask in self.masks.items():
            yield modules[name].weight, mask

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Zero the masked-out weights."""
        for weight, mask in self._weights(model):
            weight.mul_(mask.to(weight.device, weight.dtype))

    @torch.no_grad()
    def mask_gradients(self, model: nn.Module) -> None:
        for weight, mask in self._weights(model):
            if weight.grad is not None:
                weight.grad.mul_(mask.to(weight.device, weight.dtype))

    def sparsity(self) -> float:
        """Fraction of masked-out weights over all masked layers."""
        total = sum(m.numel() for m in self.masks.values())
        return 1.0 - sum(int(m.sum()) for m in self.masks.values()) / total if total else 0.0

    def layer_sparsity(self) -> dict[str, float]:
        return {name: 1.0 - float(m.float().mean()) for name, m in self.masks.items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: m.clone() for name, m in self.masks.items()}


class KeepMasked(Callback):
    """Keeps pruned weights at zero while training: masks gradients, re-applies after each step."""

    def __init__(self, masks: MaskSet):
        self.masks = masks

    def on_train_begin(self, trainer) -> None:
        self.masks.apply(trainer.model)

    def after_backward(self, trainer) -> None:
        self.masks.mask_gradients(trainer.model)

    def after_step(self, trainer) -> None:
        self.masks.apply(trainer.model)  # weight decay and momentum would otherwise revive them
