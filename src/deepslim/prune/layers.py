"""Layer dropping: remove whole layers of an encoder stack, chosen by measured loss or by position.

A *stack* is an ``nn.ModuleList`` of at least two layers of one class whose name ends with ``Layer``
and whose parameters have the same shapes (Hugging Face ``BertEncoder.layer`` of ``BertLayer``,
``nn.TransformerEncoder.layers`` of ``nn.TransformerEncoderLayer``). Dropping replaces it with a
new, shorter ``ModuleList`` and updates the layer counts the modules around it read (a Hugging Face
config's ``num_hidden_layers``, ``num_layers`` attributes that ``deepslim.save`` records), so the
model saves and loads back at its new depth.

``selection="greedy_loss"`` removes one layer at a time, each time the one whose removal raises the
loss on the data least (every remaining layer is tried: ``n - k`` rounds of at most ``n`` forward
passes over the data). The loss is the task's (``task=``/``loss_fn=``, see ``train/task.py``);
batches with targets and no task use cross-entropy (classification); batches without targets and no
task use the mean squared distance to the unpruned model's outputs.
"""

from __future__ import annotations

from torch import nn

from ..core import DeepslimError, eval_mode, set_submodule
from .config import LayerDropping
from .loss import DataLoss

LOOKED_FOR = ("an nn.ModuleList of at least two identical layers whose class name ends with 'Layer' "
              "(Hugging Face BertEncoder.layer, nn.TransformerEncoder.layers)")


def _identical(layers: nn.ModuleList) -> bool:
    first = layers[0]
    if not type(first).__name__.endswith("Layer"):
        return False
    shapes = [tuple(p.shape) for p in first.parameters()]
    return all(type(m) is type(first) and [tuple(p.shape) for p in m.parameters()] == shapes for m in layers)


def layer_stacks(model: nn.Module) -> dict[str, nn.ModuleList]:
    """Every droppable layer stack by module name (stacks inside another stack's layers are left out).

    Example:
        >>> from torch import nn
        >>> enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 3)
        >>> list(layer_stacks(enc))
        ['layers']
    """
    found: dict[str, nn.ModuleList] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) >= 2 and _identical(module):
            if not any(name.startswith(outer + ".") for outer in found):
                found[name] = module
    return found


def _stack(model: nn.Module, cfg: LayerDropping) -> tuple[str, nn.ModuleList]:
    stacks = layer_stacks(model)
    if cfg.stack is not None:
        if cfg.stack not in stacks:
            raise DeepslimError(f"LayerDropping.stack = '{cfg.stack}' is not a layer stack of {type(model).__name__}",
                                hint=f"stacks found: {', '.join(stacks) or 'none'}")
        return cfg.stack, stacks[cfg.stack]
    if not stacks:
        raise DeepslimError(f"{type(model).__name__} has no layer stack to drop layers from: looked for {LOOKED_FOR}",
                            hint="use HeadPruning, FFNPruning or ChannelPruning for other models")
    if len(stacks) > 1:
        raise DeepslimError(f"{type(model).__name__} has {len(stacks)} layer stacks ({', '.join(stacks)})",
                            hint="name the one to shorten with LayerDropping(stack=...)")
    return next(iter(stacks.items()))


def _set_layers(model: nn.Module, name: str, layers: list[nn.Module]) -> nn.ModuleList:
    new = nn.ModuleList(layers)
    set_submodule(model, name, new)
    return new


def _sync_counts(model: nn.Module, name: str, before: int, after: int, kept: list[int]) -> None:
    """Layer counts in the modules containing the stack (and their HF configs), and each layer's ``layer_idx``."""
    path = name.split(".")
    owners = [model] + [model.get_submodule(".".join(path[:i])) for i in range(1, len(path))]
    for owner in owners:
        for attr in ("num_layers", "num_hidden_layers"):
            if getattr(owner, attr, None) == before and not isinstance(getattr(owner, attr), bool):
                setattr(owner, attr, after)
        config = getattr(owner, "config", None)
        if config is not None and getattr(config, "num_hidden_layers", None) == before:
            config.num_hidden_layers = after
            types = getattr(config, "layer_types", None)
            if isinstance(types, list) and len(types) == before:
                config.layer_types = [types[i] for i in kept]
    for index, layer in enumerate(model.get_submodule(name)):
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = index


def _greedy(model: nn.Module, name: str, keep: int, loss: DataLoss) -> tuple[list[int], list[dict]]:
    """Drop, one at a time, the layer whose removal raises the loss least; returns (kept, per-round losses)."""
    layers = list(model.get_submodule(name))
    kept, rounds = list(range(len(layers))), []
    try:
        while len(kept) > keep:
            trials = {}
            for index in kept:
                _set_layers(model, name, [layers[i] for i in kept if i != index])
                trials[index] = loss()
            worst = min(trials, key=lambda i: (trials[i], -i))  # ties: drop the later layer
            rounds.append({"dropped": worst, "loss": trials[worst], "losses": {str(i): v for i, v in trials.items()}})
            kept.remove(worst)
    finally:
        _set_layers(model, name, layers)
    return kept, rounds


def drop_layers(model: nn.Module, cfg: LayerDropping, example_inputs=None, *, data=None, task=None) -> dict:
    """Remove layers in place as ``cfg`` says; returns ``{stack: {before, after, dropped, kept[, rounds]}}``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 4)
        >>> info = drop_layers(enc, LayerDropping(keep_layers=2, selection="last"))
        >>> len(enc.layers), info["layers"]["dropped"]
        (2, [2, 3])
    """
    name, stack = _stack(model, cfg)
    n = len(stack)
    if cfg.drop_layers is not None:
        bad = [i for i in cfg.drop_layers if i >= n]
        if bad:
            raise DeepslimError(f"LayerDropping.drop_layers names layer {bad[0]}, but '{name}' has {n} layers",
                                hint=f"indices run from 0 to {n - 1}")
        if len(cfg.drop_layers) >= n:
            raise DeepslimError(f"LayerDropping.drop_layers would remove every layer of '{name}'", hint="keep one at least")
        kept = [i for i in range(n) if i not in cfg.drop_layers]
        rounds = None
    else:
        keep = cfg.keep_layers if cfg.keep_layers is not None else max(1, n // 2)
        if keep > n:
            raise DeepslimError(f"LayerDropping.keep_layers = {keep}, but '{name}' has only {n} layers",
                                hint=f"keep at most {n}")
        rounds = None
        if cfg.selection == "last":
            kept = list(range(keep))
        elif cfg.selection == "first":
            kept = list(range(n - keep, n))
        else:
            with eval_mode(model):
                kept, rounds = _greedy(model, name, keep, DataLoss(model, data, example_inputs, task,
                                                                   owner="LayerDropping(selection='greedy_loss')"))
    layers = list(stack)
    _set_layers(model, name, [layers[i] for i in kept])
    _sync_counts(model, name, n, len(kept), kept)
    info = {"before": n, "after": len(kept), "dropped": [i for i in range(n) if i not in kept], "kept": kept}
    if rounds is not None:
        info["rounds"] = rounds
    return {name: info}
