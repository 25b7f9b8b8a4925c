"""Structured channel pruning that physically removes channels, on Torch-Pruning's dependency graph.

Torch-Pruning traces the model and groups every slice that must shrink together (the
conv's filters, the following BN, the next layer's input channels, residual partners,
concatenation offsets, depthwise groups, flatten->linear blocks). We add what deepslim
needs around it: our configs and importance names, attention modules written with
separate q/k/v projections (heads kept, head width pruned), per-layer ratios by name,
clear errors, and a model left untouched when anything fails.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from ..core import DeepslimError
from .config import ChannelPruning
from .select import PRUNABLE, check_names_exist, classifier_head


def _importance(cfg: ChannelPruning):
    import torch_pruning as tp

    imp = tp.importance
    return {"l1": lambda: imp.GroupMagnitudeImportance(p=1), "l2": lambda: imp.GroupMagnitudeImportance(p=2),
            "bn_scale": imp.BNScaleImportance, "taylor": imp.GroupTaylorImportance, "fpgm": imp.FPGMImportance,
            "random": imp.RandomImportance}[cfg.importance]()


def _attention_heads(model: nn.Module) -> dict[nn.Module, int]:
    """Separate q/k/v projections of attention modules with ``num_heads`` (e.g. the zoo's ViT)."""
    heads = {}
    for module in model.modules():
        if isinstance(getattr(module, "num_heads", None), int) and all(
                isinstance(getattr(module, n, None), nn.Linear) for n in ("q", "k", "v")):
            for n in ("q", "k", "v"):
                heads[getattr(module, n)] = module.num_heads
    return heads


def _sync_attention_widths(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(getattr(module, "head_dim", None), int) and isinstance(getattr(module, "q", None), nn.Linear):
            module.head_dim = module.q.out_features // module.num_heads


def _taylor_gradients(model: nn.Module, data) -> None:
    if data is None:
        raise DeepslimError("importance='taylor' needs data to compute gradients",
                            hint="pass data=(images, labels) (a batch or two of training data)")
    images, labels = data
    model.zero_grad()
    nn.functional.cross_entropy(model(images), labels).backward()


def channel_prune(model: nn.Module, cfg: ChannelPruning, example_inputs: torch.Tensor, *, skip_head: bool = True,
                  ignored: list[str] | None = None, data=None) -> dict:
    """Remove channels in place; returns per-layer shapes before and after.

    The model is left exactly as it was if tracing or surgery fails.
    """
    import torch_pruning as tp

    check_names_exist(model, list(cfg.per_layer) + list(ignored or []))
    modules = dict(model.named_modules())
    ignored_layers = [modules[n] for n in (ignored or [])]
    head = classifier_head(model) if skip_head else None
    if head is not None:
        ignored_layers.append(modules[head])
    ratio_dict = {}
    for name, ratio in cfg.per_layer.items():
        if ratio == 0:
            ignored_layers.append(modules[name])
        else:
            ratio_dict[modules[name]] = ratio
    before = {n: tuple(m.weight.shape) for n, m in model.named_modules() if isinstance(m, PRUNABLE)}
    backup = copy.deepcopy(model)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner = tp.pruner.MetaPruner(
                model, example_inputs, importance=_importance(cfg), global_pruning=cfg.global_ranking,
                pruning_ratio=cfg.ratio, pruning_ratio_dict=ratio_dict or None, ignored_layers=ignored_layers,
                round_to=cfg.round_to, num_heads=_attention_heads(model), prune_num_heads=False,
                prune_head_dims=True)
    except Exception as exc:
        raise DeepslimError(f"cannot trace the model's channel dependencies: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}",
                            hint="skip the layer involved via per_layer={'name': 0} or prune it unstructured") from exc
    try:
        if cfg.importance == "taylor":
            _taylor_gradients(model, data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner.step()
        _sync_attention_widths(model)
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            model(example_inputs)
    except Exception as exc:
        model.__dict__.update(backup.__dict__)  # restore every submodule and parameter
        if isinstance(exc, DeepslimError):
            raise
        raise DeepslimError(f"channel pruning failed and was undone: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}",
                            hint="skip the layer involved via per_layer={'name': 0}") from exc
    finally:
        model.train(was_training)
    after = {n: tuple(m.weight.shape) for n, m in model.named_modules() if isinstance(m, PRUNABLE)}
    return {n: {"before": list(before[n]), "after": list(after.get(n, ()))} for n in before if before[n] != after.get(n)}
