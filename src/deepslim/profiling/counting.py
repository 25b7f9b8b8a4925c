"""Count parameters, MACs and FLOPs of one forward pass, per layer.

Built on ``torch.utils.flop_counter.FlopCounterMode``: its formula registry (extended in
``formulas.py``) gives the matmul/conv-family FLOPs, its module tracker tells which
modules are running. We subclass it to also (a) attribute each op to the innermost
module that ran it, so functional matmuls land on the module that called them,
(b) estimate element-wise work separately (``other_flops``), and (c) list every op that
does arithmetic but has no formula, instead of silently counting it as 0.

Conventions (see docs/profiling.md): a MAC is one multiply-accumulate of the matmul/conv
family; ``flops = 2 x macs``; bias additions and everything else (activations,
normalisation, pooling, element-wise adds, softmax) count one FLOP per element in
``other_flops``, an estimate kept apart from ``flops``.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..core.inputs import as_args_kwargs, check_inputs, model_device, move_inputs, output_tensors
from .formulas import EXTRA_FORMULAS

aten = torch.ops.aten

# Ops that move or create data but do no arithmetic.
_NO_COMPUTE = {
    "cat", "stack", "zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like", "full_like",
    "clone", "copy_", "_to_copy", "detach", "alias", "lift_fresh", "contiguous", "constant_pad_nd", "index",
    "index_select", "gather", "scatter", "masked_fill", "fill_", "zero_", "arange", "flip", "roll", "repeat",
    "expand", "new_zeros", "new_empty", "new_ones", "_local_scalar_dense", "item", "split_with_sizes",
    "unbind", "embedding", "randn", "rand", "bernoulli_", "bernoulli", "native_dropout", "dropout",
    "max_pool2d_with_indices_backward", "set_", "resize_", "as_strided", "copy", "slice_scatter",
    "select_scatter", "_unsafe_index", "lift", "scalar_tensor", "_foreach_copy_", "unsafe_split", "split",
    "unsafe_chunk", "chunk", "_unsafe_view", "view_copy", "_reshape_alias", "reshape", "t_copy",
    "transpose_copy", "permute_copy", "expand_copy", "squeeze_copy", "unsqueeze_copy",
}
# Ops whose element-wise work is estimated from the input size (pooling and reductions).
_FROM_INPUT = {"max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
               "avg_pool1d", "avg_pool2d", "avg_pool3d", "_adaptive_avg_pool2d", "adaptive_avg_pool2d",
               "_adaptive_avg_pool3d", "adaptive_max_pool2d", "mean", "sum", "amax", "amin", "max", "min",
               "var_mean", "var", "std", "logsumexp", "norm", "linalg_vector_norm", "_softmax", "_log_softmax",
               "native_batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
               "native_layer_norm", "native_group_norm", "_weight_norm_interface", "cumsum", "argmax", "argmin",
               "topk", "sort", "_safe_softmax"}


def _is_view(func_packet) -> bool:
    overload = getattr(func_packet, "default", None)
    if overload is None:
        names = func_packet.overloads()
        overload = getattr(func_packet, names[0]) if names else None
    return bool(overload is not None and overload.is_view)


def _is_pointwise(func_packet) -> bool:
    for name in func_packet.overloads():
        if torch.Tag.pointwise in getattr(func_packet, name).tags:
            return True
    return False


def _has_bias(name: str, args) -> bool:
    """addmm/baddbmm always add their first argument; convolution adds a bias when one is given."""
    if name in ("addmm", "baddbmm", "addbmm", "addmv"):
        return True
    return name == "convolution" and len(args) > 2 and isinstance(args[2], torch.Tensor)


def _numel(tree) -> int:
    if isinstance(tree, torch.Tensor):
        return tree.numel()
    if isinstance(tree, (list, tuple)):
        return sum(_numel(t) for t in tree)
    return 0


@dataclass
class OpCounts:
    """What ran inside one module (its own ops, not its children's)."""

    flops: int = 0
    other_flops: int = 0
    calls: int = 0
    uncounted: dict = field(default_factory=lambda: defaultdict(int))


class _AttributingCounter(FlopCounterMode):
    """FlopCounterMode that books every op against the innermost running module."""

    def __init__(self):
        super().__init__(display=False, custom_mapping=EXTRA_FORMULAS)
        self.by_module: dict[str, OpCounts] = defaultdict(OpCounts)

    def _innermost(self) -> str:
        return max(self.mod_tracker.parents, key=lambda name: (name != "Global", name.count("."), len(name)))

    def _count_flops(self, func_packet, out, args, kwargs):
        counts = self.by_module[self._innermost()]
        counts.calls += 1
        name = func_packet.__name__.split(".")[-1]
        if func_packet in self.flop_registry:
            counts.flops += self.flop_registry[func_packet](*args, **kwargs, out_val=out)
            if _has_bias(name, args):
                counts.other_flops += _numel(out)
        elif name in _FROM_INPUT:
            counts.other_flops += _numel(args[0]) if args else 0
        elif _is_pointwise(func_packet):
            counts.other_flops += _numel(out)
        elif name not in _NO_COMPUTE and not name.startswith(("sym_", "_assert")) and not _is_view(func_packet):
            counts.uncounted[f"aten.{name}"] += 1
        return super()._count_flops(func_packet, out, args, kwargs)


@dataclass
class LayerCount:
    """One row of the per-layer table."""

    name: str
    type: str
    params: int
    macs: int
    other_flops: int
    output_shape: list | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class CountResult:
    params: int
    macs: int
    flops: int
    other_flops: int
    layers: list[LayerCount]
    uncounted: list[dict]
    output_shape: list


def _first_tensor(output):
    """The first tensor of a layer's output (a tensor, a tuple/list or a dict such as a Hugging Face
    ``ModelOutput``), for the per-layer table; ``None`` when there is none. Never raises: inner layers may
    return anything, only the model's own output must be tensors."""
    if isinstance(output, torch.Tensor):
        return output
    values = output.values() if isinstance(output, Mapping) else output if isinstance(output, (tuple, list)) else ()
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    return None


def output_shape(output) -> list:
    """Shape of a model's output: ``[n, classes]`` for one tensor, a list of shapes for several."""
    found = output_tensors(output)
    return list(found[0].shape) if len(found) == 1 else [list(t.shape) for t in found]


def _output_shapes(model: nn.Module):
    shapes: dict[nn.Module, list] = {}

    def hook(module, inputs, output):
        first = _first_tensor(output)
        if first is not None:
            shapes[module] = list(first.shape)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    return shapes, handles


@contextlib.contextmanager
def math_attention():
    """Run ``nn.MultiheadAttention`` / ``nn.TransformerEncoder`` on their plain math path.

    In eval mode with a padding mask their fast path packs the batch into nested tensors, which
    FlopCounterMode's attention formula cannot size ("NestedTensorImpl doesn't support sizes");
    the math path does the same multiply-adds on ordinary tensors.
    """
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def count_ops(model: nn.Module, example_inputs) -> CountResult:
    """Count one forward pass of ``model`` on ``example_inputs``: a tensor, a tuple (positional arguments)
    or a dict (keyword arguments), moved to the model's device (see ``deepslim.core.inputs``).

    Example:
        >>> r = count_ops(nn.Linear(8, 4), torch.randn(2, 8))
        >>> (r.macs, r.flops, r.params)
        (64, 128, 36)
        >>> count_ops(nn.Linear(8, 4), {"input": torch.randn(2, 8)}).macs   # keyword arguments
        64
    """
    check_inputs(model, example_inputs)
    args, kwargs = as_args_kwargs(move_inputs(example_inputs, model_device(model)))
    shapes, handles = _output_shapes(model)
    counter = _AttributingCounter()
    try:
        with torch.no_grad(), math_attention(), counter:
            output = model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    root = type(model).__name__
    by_name = {root if name == "" else f"{root}.{name}": (name or root, module)
               for name, module in model.named_modules()}
    layers, uncounted = [], []
    for tracked, counts in counter.by_module.items():
        display, module = by_name.get(tracked, (tracked, None))
        for op, calls in counts.uncounted.items():
            uncounted.append({"module": display, "op": op, "calls": calls})
    for name, module in model.named_modules():
        tracked = root if name == "" else f"{root}.{name}"
        counts = counter.by_module.get(tracked)
        is_leaf = not any(True for _ in module.children())
        own_params = sum(p.numel() for p in module.parameters(recurse=False))
        if not is_leaf and not (counts and (counts.flops or counts.other_flops)) and not own_params:
            continue
        layers.append(LayerCount(name or root, type(module).__name__, own_params,
                                 (counts.flops // 2) if counts else 0, counts.other_flops if counts else 0,
                                 shapes.get(module)))
    flops = sum(c.flops for c in counter.by_module.values())
    other = sum(c.other_flops for c in counter.by_module.values())
    return CountResult(params=sum(p.numel() for p in model.parameters()), macs=flops // 2, flops=flops,
                       other_flops=other, layers=layers, uncounted=uncounted, output_shape=output_shape(output))
