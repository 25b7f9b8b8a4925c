"""``deepslim.profile(model, example_inputs)``: what one forward pass of a model costs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..core import DeepslimError, eval_mode
from ..core.inputs import as_args_kwargs, check_inputs
from .counting import LayerCount, count_ops
from .memory import param_bytes, peak_activation_bytes


@dataclass
class Profile:
    """Cost of one forward pass. ``macs`` are multiply-accumulates of the matmul/conv family;
    ``flops = 2 * macs``; ``other_flops`` estimates element-wise work (one per element)."""

    params: int
    macs: int
    flops: int
    other_flops: int
    activation_bytes: int
    param_bytes: dict[str, int]
    input_shape: list | dict  # one shape, a list of shapes (positional inputs) or {name: shape}
    output_shape: list        # one shape, or a list of shapes for several outputs
    layers: list[LayerCount] = field(default_factory=list)
    uncounted: list[dict] = field(default_factory=list)
    extras: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k not in ("layers",)}
        data["layers"] = [layer.to_dict() for layer in self.layers]
        return data

    def table(self, max_rows: int | None = None) -> str:
        """A readable summary and per-layer table."""
        lines = [f"params {self.params:,}   MACs {self.macs:,} ({_si(self.macs)})   FLOPs {_si(self.flops)} "
                 f"(+{_si(self.other_flops)} element-wise, estimated)",
                 f"input {_shape_text(self.input_shape)} -> output {_shape_text(self.output_shape)}   "
                 f"weights {_bytes(sum(self.param_bytes.values()))}   peak activations {_bytes(self.activation_bytes)}"]
        if self.uncounted:
            ops = ", ".join(f"{u['op']} in {u['module']} (x{u['calls']})" for u in self.uncounted)
            lines.append(f"WARNING uncounted ops (counted as 0 MACs): {ops}")
        rows = [layer for layer in self.layers if layer.macs or layer.params]
        shown = rows if max_rows is None else rows[:max_rows]
        width = max([len(r.name) for r in shown] + [5])
        lines.append("")
        lines.append(f"{'layer':<{width}}  {'type':<18} {'params':>10} {'MACs':>12} {'%MACs':>6}  output")
        for r in shown:
            share = 100.0 * r.macs / self.macs if self.macs else 0.0
            lines.append(f"{r.name:<{width}}  {r.type:<18} {r.params:>10,} {r.macs:>12,} {share:>5.1f}%  "
                         f"{tuple(r.output_shape) if r.output_shape else ''}")
        if len(shown) < len(rows):
            lines.append(f"... {len(rows) - len(shown)} more layers (use --json for all)")
        return "\n".join(lines)


def _si(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def _bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def _shape_of(value):
    return list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def input_shapes(example_inputs):
    """Shapes of ``example_inputs`` as a profile records them: one list for a tensor, a list of lists for
    positional arguments, ``{name: shape}`` for keyword arguments (non-tensor values by type name)."""
    if isinstance(example_inputs, torch.Tensor):
        return list(example_inputs.shape)
    args, kwargs = as_args_kwargs(example_inputs)
    if kwargs:
        return {k: _shape_of(v) for k, v in kwargs.items()}
    return [_shape_of(v) for v in args] if len(args) > 1 else _shape_of(args[0])


def _shape_text(shapes) -> str:
    if isinstance(shapes, dict):
        return ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v}" for k, v in shapes.items())
    if shapes and isinstance(shapes[0], list):
        return ", ".join(str(tuple(s)) if isinstance(s, list) else str(s) for s in shapes)
    return str(tuple(shapes))


def profile(model: nn.Module, example_inputs) -> Profile:
    """Params, MACs/FLOPs (total and per layer), parameter and peak activation memory.

    ``example_inputs`` is a tensor, a tuple (positional arguments) or a dict (keyword arguments, e.g. a
    tokenizer's ``input_ids`` and ``attention_mask``); see ``deepslim.core.inputs``. Runs the model once in
    eval mode (its mode is restored); inputs that ``forward`` cannot take, or outputs that are not tensors,
    are refused with a ``DeepslimError``, and a forward that fails is reported naming the input shapes.

    Example:
        >>> import deepslim, torch
        >>> p = deepslim.profile(deepslim.create_model("lenet5"), torch.randn(1, 1, 28, 28))
        >>> p.macs
        416520
        >>> deepslim.profile(torch.nn.Linear(8, 4), {"input": torch.randn(1, 8)}).input_shape
        {'input': [1, 8]}
    """
    check_inputs(model, example_inputs)  # names forward's parameters before anything runs
    shapes = input_shapes(example_inputs)
    try:
        with eval_mode(model):
            counts = count_ops(model, example_inputs)
            activations = peak_activation_bytes(model, example_inputs)
    except DeepslimError:
        raise
    except Exception as exc:  # any failure inside the user's forward
        expected = _expected_shape(model) if isinstance(example_inputs, torch.Tensor) else None
        hint = (f"the model expects inputs like {expected}" if expected
                else "check the input shape and dtype" if isinstance(example_inputs, torch.Tensor)
                else "check each input's shape and dtype against what forward expects")
        raise DeepslimError(f"the model failed on inputs of shape {_shape_text(shapes)}: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", hint=hint) from exc
    return Profile(params=counts.params, macs=counts.macs, flops=counts.flops, other_flops=counts.other_flops,
                   activation_bytes=activations, param_bytes=param_bytes(model), input_shape=shapes,
                   output_shape=counts.output_shape, layers=counts.layers, uncounted=counts.uncounted)


def _expected_shape(model: nn.Module) -> tuple | None:
    shape = (getattr(model, "deepslim_metadata", None) or {}).get("input_shape")
    if shape:
        return tuple(shape)
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))), None)
    if isinstance(first, nn.Linear):
        return ("batch", first.in_features)
    if first is not None:
        return ("batch", first.in_channels, "...")
    return None
