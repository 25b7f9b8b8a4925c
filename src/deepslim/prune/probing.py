"""Helpers shared by the measured searches (sensitivity scan, adaptive walk): which layers
prune together, and a short fine-tune that lets a trial recover before it is judged."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..core import DeepslimError
from .api import prune_
from .config import ChannelPruning
from .select import select_layers


def coupled_groups(model: nn.Module, example_inputs, layers: list[str] | None = None,
                   importance: str = "l2") -> dict[str, list[str]]:
    """Layers whose output channels are removed together (a residual add, a concat), keyed by the first.

    Found by pruning each layer alone on a copy and seeing which layers' outputs shrink with it.
    Layers the tracer cannot prune are left out.

    Example:
        >>> import deepslim, torch
        >>> sorted(coupled_groups(deepslim.create_model("lenet5"), torch.randn(1, 1, 28, 28)))
        ['0', '3', '7']
    """
    names = layers or list(select_layers(model, default=True))
    seen: dict[frozenset, list[str]] = {}
    for name in names:
        trial = copy.deepcopy(model)
        try:
            plan = prune_(trial, ChannelPruning(ratio=0.0, importance=importance, per_layer={name: 0.5}),
                          example_inputs=example_inputs, skip_head=False)
        except DeepslimError:
            continue  # a layer the tracer cannot prune is simply not a candidate
        shrunk = frozenset(n for n, s in plan.layers.items() if s["after"] and s["after"][0] != s["before"][0])
        if name in shrunk:
            seen.setdefault(shrunk, []).append(name)
    return {members[0]: members for members in seen.values()}


def short_finetune(model: nn.Module, train_data, images: int, *, lr: float = 0.01, batch_size: int = 128,
                   offset: int = 0) -> None:
    """Train ``model`` in place for one pass over ``images`` training images starting at ``offset``.

    SGD at a constant ``lr`` with the usual augmentation; the window wraps around the set, so
    moving ``offset`` between calls walks through it. Leaves the model in eval mode.

    Example:
        >>> import deepslim
        >>> data = deepslim.load_dataset("synthetic", subset=200)
        >>> short_finetune(deepslim.create_model("lenet5"), data.train, 64, batch_size=32)
    """
    from ..train import TrainConfig, Trainer

    n = len(train_data)
    indices = (torch.arange(images) + offset) % n
    cfg = TrainConfig(epochs=1, lr=lr, batch_size=min(batch_size, images), schedule="constant", seed=offset % 10_000)
    device = next(model.parameters()).device
    Trainer(model, cfg, device=device).fit(train_data.take(indices))
    model.eval()
