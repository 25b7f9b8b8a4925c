"""``deepslim.prune_(model, config)``: the one pruning verb."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..core import Config, DeepslimError, eval_mode
from ..core.inputs import check_inputs
from ..export.files import write_atomic, write_json_atomic
from .blocks import drop_blocks
from .config import (
    STRUCTURED,
    UNSTRUCTURED,
    BlockDropping,
    ChannelPruning,
    HeadPruning,
    LayerDropping,
    MagnitudePruning,
    NMSparsity,
    RandomPruning,
)
from .layers import drop_layers
from .masks import MaskSet
from .select import select_layers
from .structured import channel_prune
from .transformer import ffn_prune, head_prune
from .unstructured import magnitude_masks, nm_masks


@dataclass
class PruningPlan:
    """What a pruning call did: its config, the masks (unstructured) or the changed layer
    shapes (structured), head counts (head pruning: ``name -> {before, after}``) or FFN blocks
    (``up -> down``), and counts before and after. Save it, inspect it, re-apply it."""

    config: Config
    masks: MaskSet = field(default_factory=MaskSet)
    layers: dict = field(default_factory=dict)
    params_before: int = 0
    params_after: int = 0
    macs_before: int | None = None
    macs_after: int | None = None
    heads: dict = field(default_factory=dict)
    ffn_blocks: dict = field(default_factory=dict)

    @property
    def structured(self) -> bool:
        return isinstance(self.config, STRUCTURED)

    def to_dict(self) -> dict:
        out = {"config": self.config.to_dict(), "structured": self.structured, "layers": self.layers,
               "sparsity": self.masks.sparsity() if len(self.masks) else None,
               "params_before": self.params_before, "params_after": self.params_after,
               "macs_before": self.macs_before, "macs_after": self.macs_after}
        if self.heads:
            out["heads"] = self.heads
        if self.ffn_blocks:
            out["ffn_blocks"] = self.ffn_blocks
        return out

    def save(self, path: str | Path) -> Path:
        """Write ``plan.json`` and, for masks, ``masks.safetensors`` into the folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if len(self.masks):
            tensors = {k: v.to(torch.uint8).contiguous() for k, v in self.masks.state_dict().items()}
            write_atomic(path / "masks.safetensors", lambda p: save_file(tensors, str(p)))
        write_json_atomic(path / "plan.json", self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PruningPlan":
        path = Path(path)
        try:
            data = json.loads((path / "plan.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DeepslimError(f"cannot read pruning plan in {path}: {exc}") from exc
        masks = MaskSet(load_file(str(path / "masks.safetensors"))) if (path / "masks.safetensors").is_file() else MaskSet()
        return cls(Config.from_dict(data["config"]), masks, data.get("layers", {}), data.get("params_before", 0),
                   data.get("params_after", 0), data.get("macs_before"), data.get("macs_after"),
                   data.get("heads", {}), data.get("ffn_blocks", {}))


def _count_macs(model: nn.Module, example_inputs) -> int | None:
    if example_inputs is None:
        return None
    from ..profiling.counting import count_ops

    with eval_mode(model):
        return count_ops(model, example_inputs).macs


def _task(task, loss_fn):
    """The task whose loss ranks Taylor importance; ``None`` keeps cross-entropy on (logits, labels)."""
    if task is None and loss_fn is None:
        return None
    from ..train.task import resolve_task

    return resolve_task(task, loss_fn)


def _nonzero_params(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


def prune_(model: nn.Module, config: Config, *, example_inputs=None, filter_fn=None, layers: dict | None = None,
           masks: MaskSet | None = None, skip_head: bool = True, data=None, task=None, loss_fn=None) -> PruningPlan:
    """Prune ``model`` in place as ``config`` says; return the plan.

    - Unstructured (``MagnitudePruning``, ``RandomPruning``, ``NMSparsity``): zeroes weights and
      returns their masks; keep them through fine-tuning with ``KeepMasked(plan.masks)``.
      Passing the previous round's ``masks`` makes masks only shrink (iterative pruning).
    - Structured (``ChannelPruning``, ``HeadPruning``, ``FFNPruning``, ``LayerDropping``,
      ``BlockDropping``): removes channels, whole attention heads, FFN neurons, whole encoder layers
      or whole blocks for real; needs
      ``example_inputs``. ``LayerDropping(selection="greedy_loss")`` and ``BlockDropping`` measure the loss of ``task`` on
      ``data`` (without data: the distance to the unpruned model's outputs on ``example_inputs``).

    ``example_inputs`` is what the model is called with: a tensor, a tuple (positional
    arguments) or a dict (keyword arguments, e.g. ``input_ids`` and ``attention_mask``).
    ``filter_fn(module, name)`` or ``layers`` (names/regexes -> config, ``None`` = skip)
    choose the layers; the classifier head is skipped unless ``skip_head=False``.
    ``importance="taylor"`` takes its gradients from ``data`` (a batch ``(inputs, target)`` or
    a list / iterable of batches) and the loss of ``task`` (a ``deepslim.Task`` such as
    ``EmbeddingMatch("cosine")``) or ``loss_fn(outputs, target)``; default: cross-entropy.

    Example:
        >>> import deepslim, torch
        >>> model = deepslim.create_model("resnet8")
        >>> plan = prune_(model, ChannelPruning(ratio=0.5), example_inputs=torch.randn(1, 1, 28, 28))
        >>> plan.macs_after < plan.macs_before
        True
    """
    if not isinstance(config, Config):
        raise DeepslimError(f"prune_ expects a pruning config, got {type(config).__name__}",
                            hint="e.g. MagnitudePruning(sparsity=0.5) or ChannelPruning(ratio=0.5)")
    if not isinstance(config, (*STRUCTURED, *UNSTRUCTURED)):
        raise DeepslimError(f"{type(config).__name__} is not a pruning config",
                            hint="use MagnitudePruning, RandomPruning, NMSparsity, ChannelPruning, HeadPruning, "
                                 "FFNPruning, LayerDropping or BlockDropping")
    if example_inputs is not None:
        check_inputs(model, example_inputs)  # before any work, naming forward's parameters
    params_before = sum(p.numel() for p in model.parameters())
    macs_before = _count_macs(model, example_inputs)
    if isinstance(config, STRUCTURED):
        if example_inputs is None:
            raise DeepslimError(f"{type(config).__name__} needs example_inputs to trace the model",
                                hint="pass example_inputs: a tensor such as torch.randn(1, C, H, W), a tuple of "
                                     "positional inputs or a dict of keyword inputs")
        skipped = [name for name, cfg in (layers or {}).items() if cfg is None]
        kwargs = dict(skip_head=skip_head, ignored=skipped, data=data, task=_task(task, loss_fn))
        heads, blocks = {}, {}
        if isinstance(config, BlockDropping):
            changed = drop_blocks(model, config, example_inputs, data=data, task=kwargs["task"])
        elif isinstance(config, LayerDropping):
            changed = drop_layers(model, config, example_inputs, data=data, task=kwargs["task"])
        elif isinstance(config, ChannelPruning):
            changed = channel_prune(model, config, example_inputs, **kwargs)
        elif isinstance(config, HeadPruning):
            changed, heads = head_prune(model, config, example_inputs, **kwargs)
        else:
            changed, blocks = ffn_prune(model, config, example_inputs, **kwargs)
        return PruningPlan(config, MaskSet(), changed, params_before, sum(p.numel() for p in model.parameters()),
                           macs_before, _count_macs(model, example_inputs), heads, blocks)
    chosen = select_layers(model, filter_fn=filter_fn, mapping=layers, default=config, skip_head=skip_head)
    if not chosen:
        raise DeepslimError("no layer was selected for pruning", hint="check filter_fn / layers")
    modules = dict(model.named_modules())
    new_masks: dict[str, torch.Tensor] = {}
    by_config: dict[int, tuple[Config, dict]] = {}
    for name, cfg in chosen.items():
        by_config.setdefault(id(cfg), (cfg, {}))[1][name] = modules[name]
    previous = masks.masks if masks is not None else {}
    for cfg, group in by_config.values():
        if isinstance(cfg, NMSparsity):
            new_masks.update(nm_masks(group, cfg))
        elif isinstance(cfg, (MagnitudePruning, RandomPruning)):
            new_masks.update(magnitude_masks(group, cfg, previous))
        else:
            raise DeepslimError(f"layers mapping gives {type(cfg).__name__}, which is not an unstructured config")
    for name, mask in previous.items():  # masks only shrink, also for layers not re-pruned this round
        new_masks[name] = new_masks[name] & mask.cpu() if name in new_masks else mask.cpu()
    mask_set = MaskSet(new_masks)
    mask_set.apply(model)
    plan = PruningPlan(config, mask_set, {n: {"sparsity": s} for n, s in mask_set.layer_sparsity().items()},
                       params_before, _nonzero_params(model), macs_before, macs_before)
    return plan
