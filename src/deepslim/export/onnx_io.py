"""How a model's inputs and outputs become an ONNX graph's: names, dynamic axes, feeds.

``export_onnx`` takes the three forms of inputs of ``deepslim.core.inputs`` (a tensor, a tuple
of positional arguments, a dict of keyword arguments). A single tensor is exported exactly as
before (graph input ``input``, output ``logits``: deployed files and their feeds rely on these
names). Every other form goes through ``FlatCall``, which takes the tensors as positional graph
inputs and calls the model with them the way ``call_model`` does.

Why a wrapper rather than ``torch.onnx.export(model, (*args, {kwargs}))``: the TorchScript
exporter binds that trailing dict to ``forward``'s signature itself (``_decide_input_format``):
it reorders the keys, fills left-out parameters with their defaults, silently drops keys taken
by ``**kwargs``, and the ``input_names`` we pass must then follow its order. The wrapper calls
the model exactly as every other verb does, so the graph's inputs are the given tensors, in the
order ``input_names`` gives them, and non-tensor values (``None``, flags) are constants.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Pair(nn.Module):
    ...     def forward(self, input_ids, attention_mask):
    ...         return input_ids * attention_mask
    >>> ids = torch.ones(1, 5, dtype=torch.long)
    >>> onnx_input_names(Pair(), {"input_ids": ids, "attention_mask": ids})
    ['input_ids', 'attention_mask']
    >>> states = torch.zeros(1, 5, 8)
    >>> auto_dynamic_axes(["input_ids"], [ids], ["output"], [states], sequence=True)
    {'input_ids': {0: 'batch', 1: 'sequence'}, 'output': {0: 'batch', 1: 'sequence'}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..core import DeepslimError
from ..core.inputs import as_args_kwargs, input_names, move_inputs, output_tensors, tensors


def onnx_input_names(model: nn.Module, inputs) -> list[str]:
    """Graph input names: ``input`` for a single tensor (today's files), else ``input_names`` (the dict's
    keys, or ``forward``'s parameter names for positional inputs)."""
    return ["input"] if isinstance(inputs, torch.Tensor) else input_names(model, inputs)


def onnx_output_names(count: int) -> list[str]:
    """``output`` for one output, ``output_0`` ... ``output_{n-1}`` for several."""
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


class FlatCall(nn.Module):
    """``model`` seen by the exporter as ``forward(*tensors) -> tuple of tensors``.

    It shares the model's submodules, parameters and buffers instead of holding the model as a
    child, so every ONNX node and initializer keeps the name a direct export gives it
    (``/layer1/conv/Conv``, ``layer1.conv.weight``): quantization matches nodes to modules by
    these names. The model itself is called (hooks included) with the original argument
    structure; its outputs are flattened with ``output_tensors``.
    """

    def __init__(self, model: nn.Module, inputs):
        super().__init__()
        self._modules = model._modules
        self._parameters = model._parameters
        self._buffers = model._buffers
        self._non_persistent_buffers_set = model._non_persistent_buffers_set
        self.__dict__["model"] = model  # not a child: its scope would prefix every node name
        self.__dict__["template"] = as_args_kwargs(inputs)
        # torch.onnx.export restores the exported module's mode afterwards, recursing into the shared children
        self.training = model.training

    def forward(self, *flat: torch.Tensor):
        given = iter(flat)
        args, kwargs = self.template
        args = [next(given) if isinstance(v, torch.Tensor) else v for v in args]
        kwargs = {k: next(given) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        return tuple(output_tensors(self.model(*args, **kwargs)))


def _sequence_inputs(names: list[str], values: list[torch.Tensor]) -> dict[str, int]:
    """Inputs whose axis 1 is a sequence: rank >= 2 token ids (integer) or masks (bool, or named *mask*)."""
    return {name: int(v.shape[1]) for name, v in zip(names, values)
            if v.ndim >= 2 and (not v.is_floating_point() and not v.is_complex() or "mask" in name)}


def auto_dynamic_axes(in_names, in_values, out_names, out_values, *, batch: bool = True,
                      sequence: bool = False) -> dict[str, dict[int, str]]:
    """Axis 0 of every input and output is ``batch``; with ``sequence``, axis 1 of every ids/mask input
    (see ``_sequence_inputs``) is ``sequence``, and so is axis 1 of every rank >= 3 output of that length
    (per-token states; a rank-2 output's axis 1 is left to the exporter's shape inference, as it may be
    a feature width that happens to equal the length)."""
    axes: dict[str, dict[int, str]] = {}
    n = int(in_values[0].shape[0]) if in_values and in_values[0].ndim else None
    for name, value in zip(in_names, in_values):
        if batch and value.ndim:
            axes.setdefault(name, {})[0] = "batch"
    for name, value in zip(out_names, out_values):
        if batch and value.ndim and int(value.shape[0]) == n:
            axes.setdefault(name, {})[0] = "batch"
    if sequence:
        lengths = _sequence_inputs(in_names, in_values)
        label = "sequence" if len(set(lengths.values())) <= 1 else None
        for name, length in lengths.items():
            axes.setdefault(name, {})[1] = label or f"{name}_sequence"
        if label and lengths:
            length = next(iter(lengths.values()))
            for name, value in zip(out_names, out_values):
                if value.ndim >= 3 and int(value.shape[1]) == length:
                    axes.setdefault(name, {})[1] = label
    return axes


def merge_dynamic_axes(axes: dict, extra: dict | None, known: list[str]) -> dict:
    """``axes`` updated with the caller's ``{name: {axis: label}}`` (or ``{name: [axis, ...]}``)."""
    merged = {name: dict(value) for name, value in axes.items()}
    for name, value in (extra or {}).items():
        if name not in known:
            raise DeepslimError(f"dynamic_axes names '{name}', which is not an input or output of the export",
                                hint=f"the names are {', '.join(known)}")
        if isinstance(value, Mapping):
            pairs = dict(value)
        elif isinstance(value, (list, tuple)):
            pairs = {int(axis): f"{name}_{axis}" for axis in value}
        else:
            raise DeepslimError(f"dynamic_axes['{name}'] must be {{axis: label}} or a list of axes, "
                                f"got {type(value).__name__}", hint="e.g. dynamic_axes={'input_ids': {1: 'sequence'}}")
        merged.setdefault(name, {}).update({int(a): str(label) for a, label in pairs.items()})
    return merged


@dataclass
class ExportPlan:
    """What to hand ``torch.onnx.export`` for one model and example, and how to check the file."""

    module: nn.Module
    args: tuple
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict | None
    feed: Any                                         # the example, in a form ``ort_feed`` names correctly
    named: dict[str, torch.Tensor]                    # the example's tensors by graph input name
    run_torch: Callable[[dict], list[torch.Tensor]]   # PyTorch's outputs for inputs named like ``named``
    check_dynamic: bool                               # whether to run the file at other sizes of its free axes


def plan_export(model: nn.Module, example_inputs, *, batch: bool = True, sequence: bool = False,
                extra_axes: dict | None = None) -> ExportPlan:
    """The export of ``model`` (in eval mode, on CPU) on ``example_inputs`` of any form."""
    if isinstance(example_inputs, torch.Tensor):
        return _tensor_plan(model, example_inputs.cpu(), batch, sequence, extra_axes)
    return _general_plan(model, move_inputs(example_inputs, "cpu"), batch, sequence, extra_axes)


def _tensor_plan(model, example, batch, sequence, extra_axes) -> ExportPlan:
    """A single tensor: exported exactly as deepslim always has (``input`` -> ``logits``, batch axis free)."""
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if batch else None
    asked = bool(sequence or extra_axes)
    if asked:
        axes = axes or {}
        if sequence and example.ndim >= 2 and not example.is_floating_point():
            axes.setdefault("input", {})[1] = "sequence"
        axes = merge_dynamic_axes(axes, extra_axes, ["input", "logits"])

    def run_torch(named: dict) -> list[torch.Tensor]:
        with torch.inference_mode():
            return output_tensors(model(named["input"]))

    return ExportPlan(model, (example,), ["input"], ["logits"], axes, example, {"input": example}, run_torch,
                      check_dynamic=asked)


def _general_plan(model, inputs, batch, sequence, extra_axes) -> ExportPlan:
    """A tuple or dict: exported through ``FlatCall`` with named inputs and flattened outputs."""
    flat = FlatCall(model, inputs)
    in_names, in_values = onnx_input_names(model, inputs), tensors(inputs)

    def run_torch(named: dict) -> list[torch.Tensor]:
        with torch.inference_mode():
            return list(flat(*[named[n] for n in in_names]))

    named = dict(zip(in_names, in_values))
    outputs = run_torch(named)  # refuses outputs that are not tensors before any file is written
    out_names = onnx_output_names(len(outputs))
    axes = auto_dynamic_axes(in_names, in_values, out_names, outputs, batch=batch, sequence=sequence)
    axes = merge_dynamic_axes(axes, extra_axes, in_names + out_names) or None
    return ExportPlan(flat, tuple(in_values), in_names, out_names, axes, named, named, run_torch, check_dynamic=True)


def resized(named: dict[str, torch.Tensor], axes: dict | None) -> dict[str, torch.Tensor]:
    """The inputs with every free axis resized: the batch (axis 0) grows by one sample, any other free
    axis (a sequence) shrinks by one position, or grows by repeating the last one when it has one.

    Example:
        >>> ids = torch.arange(6).reshape(2, 3)
        >>> resized({"ids": ids}, {"ids": {0: "batch", 1: "sequence"}})["ids"].tolist()
        [[0, 1], [3, 4], [0, 1]]
    """
    out = dict(named)
    for name, free in (axes or {}).items():
        if name not in out:
            continue
        t = out[name]
        for axis in sorted(free):
            if axis >= t.ndim:
                continue
            if axis == 0:
                t = torch.cat([t, t[:1]])
            elif t.shape[axis] >= 2:
                t = t.narrow(axis, 0, t.shape[axis] - 1)
            else:
                t = torch.cat([t, t.narrow(axis, t.shape[axis] - 1, 1)], axis)
        out[name] = t
    return out


def ort_feed(session, inputs) -> dict[str, np.ndarray]:
    """ONNX Runtime feeds for ``inputs``: a dict by its keys (keys the graph dropped, being unused, are
    left out), a tensor or tuple by position.

    Example:
        >>> session.run(None, ort_feed(session, {"input_ids": ids, "attention_mask": mask}))  # doctest: +SKIP
    """
    wanted = [i.name for i in session.get_inputs()]
    if isinstance(inputs, Mapping):
        given = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    else:
        values = tensors(inputs)
        if len(values) != len(wanted):
            raise DeepslimError(f"the ONNX model takes {len(wanted)} input(s) ({', '.join(wanted)}), "
                                f"got {len(values)} tensor(s)", hint="pass a dict keyed by the ONNX input names")
        given = dict(zip(wanted, values))
    missing = [name for name in wanted if name not in given]
    if missing:
        raise DeepslimError(f"the ONNX model needs input(s) {', '.join(missing)}; got {', '.join(given) or 'none'}",
                            hint=f"key the inputs by the ONNX input names: {', '.join(wanted)}")
    return {name: given[name].detach().cpu().numpy() for name in wanted}
