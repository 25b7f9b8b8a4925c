"""Hooks into the training loop, for techniques that act during training.

Pruning schedules, distillation losses and regularisers subclass ``Callback`` and
override what they need. ``extra_parameters`` adds trainable parameters outside the model
(distillation adapters) to the optimizer; ``extra_loss`` lets a callback add a term to the
loss (and ``trainer.label_loss_weight`` scales the label cross-entropy);
``after_backward`` can edit gradients (e.g. mask them); ``after_step`` can edit
weights (e.g. re-apply masks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Trainer


class Callback:
    """Base class; every hook is optional.

    ``extra_loss`` gets the batch's ``inputs`` in the form the model takes (a tensor, a tuple or a
    dict), the model's ``outputs`` as it returned them, and ``targets`` (``None`` for batches
    without one). A callback whose ``extra_loss`` can train the model on its own (distillation)
    sets ``supplies_loss``, and training then accepts batches without targets.

    Example:
        >>> class L1(Callback):
        ...     def extra_loss(self, trainer, inputs, outputs, targets):
        ...         return 1e-5 * sum(p.abs().sum() for p in trainer.model.parameters())
    """

    supplies_loss = False

    def extra_parameters(self, trainer: "Trainer") -> list[torch.nn.Parameter]:
        return []
    def on_train_begin(self, trainer: "Trainer") -> None: ...
    def on_epoch_begin(self, trainer: "Trainer", epoch: int) -> None: ...
    def on_step_begin(self, trainer: "Trainer", step: int) -> None: ...
    def extra_loss(self, trainer: "Trainer", inputs: Any, outputs: Any, targets: Any) -> torch.Tensor | None:
        return None
    def after_backward(self, trainer: "Trainer") -> None: ...
    def after_step(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer", step: int, loss: float) -> None: ...
    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict[str, Any]) -> None: ...
    def on_train_end(self, trainer: "Trainer") -> None: ...


class CallbackList(Callback):
    """Calls each callback in order; sums their extra losses."""

    def __init__(self, callbacks=()):
        self.callbacks = list(callbacks)

    def __getattribute__(self, name):
        if name.startswith("on_") or name in ("after_backward", "after_step"):
            def call_all(*args, **kwargs):
                for cb in object.__getattribute__(self, "callbacks"):
                    getattr(cb, name)(*args, **kwargs)
            return call_all
        return object.__getattribute__(self, name)

    @property
    def supplies_loss(self) -> bool:
        return any(cb.supplies_loss for cb in self.callbacks)

    def extra_parameters(self, trainer):
        return [p for cb in self.callbacks for p in cb.extra_parameters(trainer)]

    def extra_loss(self, trainer, inputs, outputs, targets):
        total = None
        for cb in self.callbacks:
            term = cb.extra_loss(trainer, inputs, outputs, targets)
            if term is not None:
                total = term if total is None else total + term
        return total
