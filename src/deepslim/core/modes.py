"""Train/eval mode set for a while, then each module's own mode restored.

``model.train(was_training)`` after a measurement puts every submodule in one mode, so a layer the user
keeps in eval (a frozen BatchNorm in a model being fine-tuned) comes back in train mode. These
context managers restore each module's mode by its qualified name: a module replaced in between (a
pruned layer, or one restored after a failure) gets the mode its name had, and a module added in
between (an attention split into heads) the mode of its nearest ancestor that was there before.

Example:
    >>> import torch.nn as nn
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    >>> _ = model[1].eval()  # the user froze the BatchNorm
    >>> with eval_mode(model):
    ...     (model.training, model[1].training)
    (False, False)
    >>> (model.training, model[1].training)
    (True, False)
"""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


@contextmanager
def set_mode(model: nn.Module, training: bool):
    """Every module of ``model`` in train (``True``) or eval mode inside; each one's own mode after."""
    modes = {name: m.training for name, m in model.named_modules()}
    model.train(training)
    try:
        yield model
    finally:
        for name, m in model.named_modules():
            m.training = modes[_recorded(name, modes)]


def _recorded(name: str, modes: dict) -> str:
    """``name`` if it was recorded, else its nearest recorded ancestor (the root always is)."""
    while name not in modes:
        name = name.rpartition(".")[0]
    return name


def eval_mode(model: nn.Module):
    """``set_mode(model, False)``: measure or run a model without changing the modes it had."""
    return set_mode(model, False)


def train_mode(model: nn.Module):
    """``set_mode(model, True)``."""
    return set_mode(model, True)
