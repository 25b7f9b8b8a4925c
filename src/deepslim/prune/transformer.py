"""Structured pruning of transformers: whole attention heads, and FFN neurons.

Both run Torch-Pruning's ``MetaPruner`` (through ``structured.run_pruner``) on only the groups
they target, every other width left alone. What Torch-Pruning does not do is here: which
modules are attention and where their head count lives (``attention.py``), swapping
``nn.MultiheadAttention`` for a module whose heads can go, rounding head counts so each layer
keeps at least one head, and finding FFN blocks (a Linear whose outputs feed, through
activations only, one other Linear) on its dependency graph.
"""

from __future__ import annotations

from torch import nn

from ..core import DeepslimError
from ..core.inputs import model_device, move_inputs
from .attention import (
    attention_layers,
    head_counts,
    heads_to_remove,
    projections,
    split_multihead_attention_,
    sync_attention,
)
from .config import FFNPruning, HeadPruning
from .select import check_names_exist, classifier_head
from .structured import run_pruner


def _ignored(model: nn.Module, skip_head: bool, ignored: list[str] | None) -> list[nn.Module]:
    check_names_exist(model, ignored or [])
    names = list(ignored or [])
    head = classifier_head(model) if skip_head else None
    if head is not None:
        names.append(head)
    return [model.get_submodule(n) for n in names]


def _inside(name: str, skipped: list[str] | None) -> bool:
    """Whether module ``name`` is one of ``skipped`` or inside one (``layers={"encoder.layer.0": None}``)."""
    return any(name == s or name.startswith(s + ".") for s in skipped or [])


def head_prune(model: nn.Module, cfg: HeadPruning, example_inputs, *, skip_head: bool = True,
               ignored: list[str] | None = None, data=None, task=None) -> tuple[dict, dict]:
    """Remove whole attention heads in place; returns (changed layer shapes, ``name -> {before, after}`` heads).

    Example:
        >>> import deepslim, torch
        >>> model = deepslim.create_model("vit-tiny")
        >>> _, heads = head_prune(model, HeadPruning(ratio=0.5), torch.randn(1, 1, 28, 28))
        >>> heads["blocks.0.attn"]
        {'before': 4, 'after': 2}
    """
    if not attention_layers(model) and not any(isinstance(m, nn.MultiheadAttention) for m in model.modules()):
        raise DeepslimError(f"{type(model).__name__} has no attention module whose heads can be pruned",
                            hint="head pruning takes nn.MultiheadAttention, Hugging Face BERT-style self-attention "
                                 "or q/k/v Linear layers with num_heads; use ChannelPruning or FFNPruning otherwise")
    ignored_layers = _ignored(model, skip_head, ignored)
    before = head_counts(model)

    def options() -> dict:  # after nn.MultiheadAttention was split: name the new projections
        heads, gate, per_layer = {}, {}, {}
        for name, (module, layout) in attention_layers(model).items():
            if _inside(name, ignored):
                continue  # not declared as attention: its groups keep their width (the ratio is 0)
            count = getattr(module, layout.heads)
            remove = heads_to_remove(count, cfg.ratio)
            for proj in projections(module, layout):
                heads[proj] = count
                # Torch-Pruning removes ceil(ratio * heads) per layer; this ratio makes that exactly ``remove``.
                per_layer[proj] = (remove - 0.5) / count if remove else 0.0
            # Torch-Pruning only visits attention groups whose width ratio is above zero; with
            # prune_head_dims=False the widths stay, the ratio only opens the group.
            gate[projections(module, layout)[0]] = 0.5
        return dict(num_heads=heads, pruning_ratio=0.0, pruning_ratio_dict=gate, ignored_layers=ignored_layers,
                    global_pruning=cfg.scope == "global", prune_num_heads=True, prune_head_dims=False,
                    head_pruning_ratio=cfg.ratio, head_pruning_ratio_dict=None if cfg.scope == "global" else per_layer)

    def finish(pruner) -> None:
        for name, (module, layout) in attention_layers(model).items():
            remaining = pruner.num_heads.get(projections(module, layout)[0], getattr(module, layout.heads))
            if remaining < 1:
                raise DeepslimError(f"global head ranking would remove every head of '{name}'",
                                    hint="lower HeadPruning.ratio or use scope='layer'")
            sync_attention(module, layout, remaining)

    layers = run_pruner(model, example_inputs, cfg.importance, options, what="head pruning", data=data,
                        task=task, prepare=lambda: split_multihead_attention_(model), finish=finish,
                        hint="prune fewer heads, or use ChannelPruning")
    after = head_counts(model)
    return layers, {n: {"before": before.get(n, after[n]), "after": after[n]} for n in after}


def ffn_blocks(model: nn.Module, dependency_graph) -> dict[str, str]:
    """``up -> down``: Linear layers whose every output feeds, through element-wise ops and reshapes only
    (activations, dropout; Hugging Face's GELU reshapes), exactly one other Linear, found on
    Torch-Pruning's dependency graph. Attention projections are not FFN blocks."""
    import torch_pruning as tp
    from torch_pruning.ops import OPTYPE

    names = {m: n for n, m in model.named_modules()}
    attention = {p for m, layout in attention_layers(model).values() for p in projections(m, layout)}
    blocks = {}
    for name, up in model.named_modules():
        if not isinstance(up, nn.Linear) or up in attention or up not in dependency_graph.module2node:
            continue
        group = dependency_graph.get_pruning_group(up, tp.prune_linear_out_channels, idxs=[0])
        downs, plain = set(), True
        for dep, _ in group:
            target = dep.target
            if target.module is up:
                continue
            if target.type == OPTYPE.LINEAR and dependency_graph.is_in_channel_pruning_fn(dep.handler):
                downs.add(target.module)
            elif target.type not in (OPTYPE.ELEMENTWISE, OPTYPE.RESHAPE):
                plain = False  # a norm, a residual partner, a concat, the model's output: not an FFN block
        if plain and len(downs) == 1:
            blocks[name] = names[downs.pop()]
    return blocks


def ffn_prune(model: nn.Module, cfg: FFNPruning, example_inputs, *, skip_head: bool = True,
              ignored: list[str] | None = None, data=None, task=None) -> tuple[dict, dict]:
    """Remove FFN neurons in place; returns (changed layer shapes, ``up -> down`` FFN blocks pruned).

    Example:
        >>> import deepslim, torch
        >>> model = deepslim.create_model("vit-tiny")
        >>> layers, blocks = ffn_prune(model, FFNPruning(ratio=0.5), torch.randn(1, 1, 28, 28))
        >>> blocks["blocks.0.fc1"], layers["blocks.0.fc1"]
        ('blocks.0.fc2', {'before': [128, 64], 'after': [64, 64]})
    """
    import torch_pruning as tp

    ignored_layers = _ignored(model, skip_head, ignored)
    found: dict[str, str] = {}

    def options() -> dict:
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs_on_device)
        found.update((up, down) for up, down in ffn_blocks(model, graph).items()
                     if model.get_submodule(up) not in ignored_layers and not _inside(up, ignored))
        if not found:
            raise DeepslimError(f"{type(model).__name__} has no feed-forward block to prune",
                                hint="an FFN block is a Linear feeding, through activations only, one other Linear; "
                                     "use ChannelPruning for other layers")
        ups = tuple(model.get_submodule(n) for n in found)
        ratios = {ups: cfg.ratio} if cfg.scope == "global" else {up: cfg.ratio for up in ups}
        return dict(pruning_ratio=0.0, pruning_ratio_dict=ratios, global_pruning=cfg.scope == "global",
                    ignored_layers=ignored_layers)

    def finish(pruner) -> None:
        for up in found:
            if model.get_submodule(up).out_features < 1:
                raise DeepslimError(f"global neuron ranking would remove every neuron of '{up}'",
                                    hint="lower FFNPruning.ratio or use scope='layer'")

    inputs_on_device = move_inputs(example_inputs, model_device(model))
    layers = run_pruner(model, example_inputs, cfg.importance, options, what="FFN pruning", data=data,
                        task=task, finish=finish, hint="prune a smaller ratio, or use ChannelPruning")
    return layers, found
