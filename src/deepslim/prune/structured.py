"""Structured channel pruning that physically removes channels, on Torch-Pruning's dependency graph.

Torch-Pruning traces the model and groups every slice that must shrink together (the
conv's filters, the following BN, the next layer's input channels, residual partners,
concatenation offsets, depthwise groups, flatten->linear blocks). We add what deepslim
needs around it: our configs and importance names, inputs of any form (a tensor, a tuple,
a dict: Torch-Pruning traces all three), attention modules written with separate q/k/v
projections (heads kept, head width pruned, the head attributes rewritten), per-layer ratios
by name, widths that meet a buffer kept and tied weights kept tied (Torch-Pruning sees
neither), clear errors, and a model left untouched when anything fails.
``run_pruner`` is that frame; head and FFN pruning (``transformer.py``) use it too.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Callable

import torch
from torch import nn

from ..core import DeepslimError, eval_mode
from ..core.inputs import Batch, call_model, check_same_structure, model_device, move_inputs, split_batch
from ..core.ties import retie, tensor_owner, tied_tensors
from .attention import attention_layers, projections, sync_attention
from .config import ChannelPruning
from .select import PRUNABLE, check_names_exist, classifier_head
from .tp_fixes import patch_torch_pruning


def importance(name: str):
    """Torch-Pruning's importance estimator for one of deepslim's importance names."""
    import torch_pruning as tp

    imp = tp.importance
    return {"l1": lambda: imp.GroupMagnitudeImportance(p=1), "l2": lambda: imp.GroupMagnitudeImportance(p=2),
            "bn_scale": imp.BNScaleImportance, "taylor": imp.GroupTaylorImportance, "fpgm": imp.FPGMImportance,
            "random": imp.RandomImportance}[name]()


def attention_heads(model: nn.Module) -> dict[nn.Module, int]:
    """Each q/k/v projection of the model's attention modules -> its module's head count (how
    Torch-Pruning learns which output channels form a head)."""
    heads = {}
    for module, layout in attention_layers(model).values():
        for proj in projections(module, layout):
            heads[proj] = getattr(module, layout.heads)
    return heads


def _one_batch(data) -> bool:
    """A tensor, a dict, a ``Batch`` or a tuple ``(inputs, target)`` is one batch; a list or any other
    iterable holds batches."""
    return isinstance(data, (torch.Tensor, Mapping, tuple, Batch))


def taylor_gradients(model: nn.Module, data, task=None) -> None:
    """Fill the parameters' gradients for Taylor importance from ``data``: one batch (``(inputs,
    target)`` or inputs alone) or a list / iterable of batches. The loss is ``task``'s (a ``deepslim.Task``),
    else cross-entropy on logits and class labels, as it always was."""
    if data is None:
        raise DeepslimError("importance='taylor' needs data to compute gradients",
                            hint="pass data=(inputs, target) (a batch or two of training data)")
    batches = [data] if _one_batch(data) else list(data)
    check_same_structure(batches)
    model.zero_grad()
    for batch in batches:
        inputs, target = split_batch(batch)
        if target is None and (task is None or task.needs_target):
            raise DeepslimError("importance='taylor' needs a loss, and the data has no target to compute it from",
                                hint="pass data=(inputs, target), or task=EmbeddingMatch(teacher=...) / "
                                     "loss_fn=lambda outputs, target: ... for unlabelled data")
        outputs = call_model(model, inputs)
        if task is not None:
            loss = task.loss(outputs, task.reference(inputs, target))
        elif isinstance(outputs, torch.Tensor):
            loss = nn.functional.cross_entropy(outputs, target.to(outputs.device))
        else:
            raise DeepslimError(f"importance='taylor' needs a loss: the default (cross-entropy on logits) cannot "
                                f"take the {type(outputs).__name__} the model returns",
                                hint="pass task=... or loss_fn=lambda outputs, target: ...")
        loss.backward()


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _shapes(model: nn.Module) -> dict[str, tuple]:
    return {n: tuple(m.weight.shape) for n, m in model.named_modules() if isinstance(m, PRUNABLE)}


def _lift_buffers(model: nn.Module) -> list[tuple[nn.Module, str, list[str]]]:
    """Turn the float buffers of modules Torch-Pruning has no pruner for (e.g. a positional table a user
    registered) into parameters while it traces: it cannot see buffers, so it would shrink a width a
    buffer is added to and the model would fail. Returns what ``_lower_buffers`` puts back."""
    import torch_pruning as tp

    handled = tuple(tp.ops.type2class(t) for t in tp.DependencyGraph().REGISTERED_PRUNERS
                    if tp.ops.type2class(t) is not None)
    lifted = []
    for module in model.modules():
        if isinstance(module, handled):  # e.g. BatchNorm's running statistics: its pruner resizes them
            continue
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.is_floating_point() and buffer.dim() > 0:
                lifted.append((module, name, list(module._buffers)))
                del module._buffers[name]
                module._parameters[name] = nn.Parameter(buffer)
    return lifted


def _lower_buffers(lifted: list[tuple[nn.Module, str, list[str]]]) -> None:
    """Parameters made by ``_lift_buffers`` back into buffers, in their places (state_dict order kept)."""
    for module, name, order in lifted:
        module._buffers[name] = module._parameters.pop(name).detach()
        ordered = [(n, module._buffers[n]) for n in order if n in module._buffers]
        module._buffers.clear()
        module._buffers.update(ordered)


def _meeting_buffers(model: nn.Module, inputs, lifted) -> list[nn.Module]:
    """Layers whose output channels meet a lifted buffer (added to it, multiplied by it ...): pruning them
    would have to resize the buffer, which the module that owns it does not describe in its constructor
    (so ``deepslim.save`` could not rebuild it). They keep their width."""
    import torch_pruning as tp

    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    buffers = {id(module._parameters[name]) for module, name, _ in lifted}
    keep = []
    for module in model.modules():
        if not isinstance(module, PRUNABLE) or module not in graph.module2node:
            continue
        group = graph.get_pruning_group(module, graph.get_pruner_of_module(module).prune_out_channels, idxs=[0])
        if any(id(dep.target.module) in buffers for dep, _ in group):
            keep.append(module)
    return keep


def _retie(model: nn.Module, ties: dict[str, str]) -> None:
    """Torch-Pruning slices each user of a tied weight into its own new Parameter: share one again. The
    slices are equal when the tie's dimension was pruned as one group; anything else is refused."""
    for alias, source in ties.items():
        shared, param = (getattr(*tensor_owner(model, name)) for name in (source, alias))
        if param is not shared and (param.shape != shared.shape or not torch.equal(param, shared)):
            raise DeepslimError(f"pruning would untie a shared weight ({source}, {alias}: "
                                f"{list(shared.shape)} vs {list(param.shape)})",
                                hint="skip one of the tied layers via per_layer={'name': 0}")
    retie(model, ties)


def run_pruner(model: nn.Module, example_inputs, importance_name: str, options: dict | Callable[[], dict], *,
               what: str, hint: str, data=None, task=None,
               prepare: Callable[[], None] | None = None, finish: Callable[[object], None] | None = None) -> dict:
    """Build Torch-Pruning's ``MetaPruner`` with ``options`` on ``example_inputs`` (any form), prune,
    and check the model still runs; returns per-layer shapes before and after.

    ``prepare()`` edits the model before tracing (e.g. splits attention); ``options`` may be a
    function, called after it, when they name the edited model's layers; ``finish(pruner)`` runs
    after pruning (e.g. rewrites head counts). The model is left exactly as it was if anything fails.
    """
    import torch_pruning as tp

    patch_torch_pruning()
    before = _shapes(model)
    backup = copy.deepcopy(model)
    with eval_mode(model):
        inputs = move_inputs(example_inputs, model_device(model))
        try:
            if prepare is not None:
                prepare()
            lifted, ties = _lift_buffers(model), tied_tensors(model)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    chosen = options() if callable(options) else dict(options)
                    if lifted:
                        chosen["ignored_layers"] = [*(chosen.get("ignored_layers") or []),
                                                    *_meeting_buffers(model, inputs, lifted)]
                    pruner = tp.pruner.MetaPruner(model, inputs, importance=importance(importance_name), **chosen)
            except DeepslimError:
                raise
            except Exception as exc:
                raise DeepslimError(f"cannot trace the model's channel dependencies: {_first_line(exc)}",
                                    hint=hint) from exc
            if importance_name == "taylor":
                taylor_gradients(model, data, task)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pruner.step()
            _lower_buffers(lifted)
            _retie(model, ties)
            if finish is not None:
                finish(pruner)
            model.zero_grad(set_to_none=True)
            with torch.no_grad():
                call_model(model, inputs)
        except Exception as exc:
            model.__dict__.update(backup.__dict__)  # restore every submodule and parameter
            if isinstance(exc, DeepslimError):
                raise
            raise DeepslimError(f"{what} failed and was undone: {_first_line(exc)}", hint=hint) from exc
    after = _shapes(model)
    return {n: {"before": list(before[n]), "after": list(after.get(n, ()))}
            for n in before if before[n] != after.get(n)}


def _sync_head_widths(model: nn.Module) -> None:
    for module, layout in attention_layers(model).values():
        sync_attention(module, layout)


def channel_prune(model: nn.Module, cfg: ChannelPruning, example_inputs, *, skip_head: bool = True,
                  ignored: list[str] | None = None, data=None, task=None) -> dict:
    """Remove channels in place; returns per-layer shapes before and after.

    ``example_inputs``: a tensor, a tuple (positional arguments) or a dict (keyword arguments).
    The model is left exactly as it was if tracing or surgery fails.
    """
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
    options = dict(global_pruning=cfg.global_ranking, pruning_ratio=cfg.ratio, pruning_ratio_dict=ratio_dict or None,
                   ignored_layers=ignored_layers, round_to=cfg.round_to, num_heads=attention_heads(model),
                   prune_num_heads=False, prune_head_dims=True)
    return run_pruner(model, example_inputs, cfg.importance, options, what="channel pruning", data=data,
                      task=task, finish=lambda pruner: _sync_head_widths(model),
                      hint="skip the layer involved via per_layer={'name': 0} or prune it unstructured")
