"""Block dropping: remove whole blocks of a network's depth by replacing them with ``nn.Identity``.

At batch 1 on a CPU runtime a small int8 network's time is mostly per-node overhead, and channel
pruning removes no node; dropping a block removes all of its nodes (two convolutions and an add for a
ResNet basic block). The first stage's block of the flagship ResNet is a quarter of its int8 batch-1
time (BENCHMARKS.md, issue 19).

A *candidate* is found by running the model once on ``example_inputs``: a module with parameters and
children, a child of an ``nn.Sequential``, called exactly once, with one tensor and no keywords, that
returns a tensor of that tensor's shape and dtype, and is residual: with all its parameters zeroed it
still passes its input through (cosine similarity above 0.5 with the input; a plain block then returns
zeros). Blocks held in two places or sharing parameters with the rest of the model are left out
(removing them would free nothing). Of nested candidates only the innermost count (a stage of residual
blocks is those blocks).

Written here: Torch-Pruning removes channels, not depth, and ``layer_dropping`` handles encoder
stacks in an ``nn.ModuleList`` (``prune/layers.py``), not a CNN's blocks.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..core import DeepslimError, eval_mode, set_submodule
from ..core.inputs import call_model
from .config import BlockDropping
from .loss import DataLoss


def _parents(model: nn.Module) -> dict[str, nn.Module]:
    parents = {}
    for name, module in model.named_modules():
        for child_name, _ in module.named_children():
            parents[f"{name}.{child_name}" if name else child_name] = module
    return parents


def _residual(module: nn.Module, like: torch.Tensor) -> bool:
    """Whether ``module`` with every parameter zeroed still passes its input through (a skip connection).

    The input is random, shaped like the one the model gave the block: the example's own values may be
    zeros (an all-zero image through an untrained stem), which would tell nothing."""
    if not like.is_floating_point():
        return False
    zeroed = copy.deepcopy(module)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(like.shape, generator=generator).to(device=like.device, dtype=like.dtype)
    with torch.no_grad():
        for p in zeroed.parameters():
            p.zero_()
        out = zeroed(inputs)
    a, b = out.flatten().double(), inputs.flatten().double()
    return bool(a.norm() > 0 and b.norm() > 0 and torch.dot(a, b) / (a.norm() * b.norm()) > 0.5)


def _private(model: nn.Module, name: str, module: nn.Module, holders: dict[int, int]) -> bool:
    """The block is held in one place only, and none of its parameters is shared with the rest of the model."""
    if holders[id(module)] > 1:
        return False
    own = {id(p) for p in module.parameters()}
    outside = {id(p) for n, m in model.named_modules() if n != name and not n.startswith(name + ".")
               for p in m.parameters(recurse=False)}
    return not own & outside


def droppable_blocks(model: nn.Module, example_inputs) -> list[str]:
    """Names of the residual blocks ``BlockDropping`` may remove, in the order the model runs them.

    Example:
        >>> import deepslim, torch
        >>> droppable_blocks(deepslim.create_model("resnet20"), torch.randn(1, 1, 28, 28))[:3]
        ['stages.0.0', 'stages.0.1', 'stages.0.2']
    """
    parents = _parents(model)
    holders: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        holders[id(module)] = holders.get(id(module), 0) + 1
    watched = {name: module for name, module in model.named_modules()
               if isinstance(parents.get(name), nn.Sequential) and any(True for _ in module.children())
               and any(True for _ in module.parameters())}
    calls: dict[str, int] = {name: 0 for name in watched}
    seen_inputs: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, args, kwargs, output):
            calls[name] += 1
            if (len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor)
                    and output.shape == args[0].shape and output.dtype == args[0].dtype):
                seen_inputs[name] = args[0].detach()
        return record

    handles = [m.register_forward_hook(hook(n), with_kwargs=True) for n, m in watched.items()]
    with eval_mode(model), torch.no_grad():
        try:
            call_model(model, example_inputs)
        finally:
            for h in handles:
                h.remove()
        found = [n for n in seen_inputs if calls[n] == 1 and _private(model, n, watched[n], holders)
                 and _residual(watched[n], seen_inputs[n])]
    return [n for n in found if not any(other.startswith(n + ".") for other in found)]


def _greedy(model: nn.Module, candidates: list[str], count: int, loss: DataLoss) -> tuple[list[str], list[dict]]:
    """Drop, one at a time, the block whose removal raises the loss least; returns (dropped, rounds)."""
    originals = {name: model.get_submodule(name) for name in candidates}
    dropped, rounds = [], []
    try:
        for _ in range(count):
            trials = {}
            for name in candidates:
                if name in dropped:
                    continue
                set_submodule(model, name, nn.Identity())
                trials[name] = loss()
                set_submodule(model, name, originals[name])
            best = min(trials, key=lambda n: (trials[n], -candidates.index(n)))  # ties: the later block
            rounds.append({"dropped": best, "loss": trials[best], "losses": trials})
            dropped.append(best)
            set_submodule(model, best, nn.Identity())
    finally:
        for name, module in originals.items():
            set_submodule(model, name, module)
    return dropped, rounds


def drop_blocks(model: nn.Module, cfg: BlockDropping, example_inputs, *, data=None, task=None) -> dict:
    """Replace blocks by ``nn.Identity`` in place as ``cfg`` says; returns ``{block: {...}}`` per block dropped.

    The greedy choice measures the loss of ``task`` on ``data`` (batches with targets and no task:
    cross-entropy; no data: the distance to the unpruned model's outputs on ``example_inputs``).

    Example:
        >>> import deepslim, torch
        >>> model = deepslim.create_model("resnet20")
        >>> info = drop_blocks(model, BlockDropping(names=["stages.0.1"]), torch.randn(1, 1, 28, 28))
        >>> type(model.stages[0][1]).__name__
        'Identity'
    """
    candidates = droppable_blocks(model, example_inputs)
    if not candidates:
        raise DeepslimError(f"{type(model).__name__} has no block to drop: looked for residual blocks inside an "
                            "nn.Sequential that return a tensor of their input's shape (an identity shortcut)",
                            hint="use ChannelPruning for models without such blocks, or LayerDropping for encoder stacks")
    if cfg.names is not None:
        unknown = [n for n in cfg.names if n not in candidates]
        if unknown:
            raise DeepslimError(f"BlockDropping.names has '{unknown[0]}', which is not a droppable block of "
                                f"{type(model).__name__}", hint=f"droppable blocks: {', '.join(candidates)}")
        dropped, rounds = list(cfg.names), None
    else:
        count = cfg.blocks or 1
        if count > len(candidates):
            raise DeepslimError(f"BlockDropping.blocks = {count}, but {type(model).__name__} has only "
                                f"{len(candidates)} droppable blocks", hint=f"drop at most {len(candidates)}")
        with eval_mode(model):
            dropped, rounds = _greedy(model, candidates, count,
                                      DataLoss(model, data, example_inputs, task, owner="BlockDropping"))
    info = {}
    for name in dropped:
        params = sum(p.numel() for p in model.get_submodule(name).parameters())
        info[name] = {"dropped": True, "params": params, "class": type(model.get_submodule(name)).__name__}
        set_submodule(model, name, nn.Identity())
    if rounds is not None:
        for i, record in enumerate(rounds):
            info[record["dropped"]].update(round=i + 1, loss=record["loss"], losses=record["losses"])
    return info
