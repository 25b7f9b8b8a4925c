"""One notion of a model's inputs, shared by every verb: a tensor, a tuple or a dict.

- a tensor ``x``: called as ``model(x)``;
- a tuple (or list) ``(a, b)``: positional arguments, ``model(a, b)``;
- a dict ``{"input_ids": ..., "attention_mask": ...}``: keyword arguments, ``model(**d)``.

Every tensor's first dimension is the batch. The helpers here call the model, move inputs to
its device, slice or repeat the batch, name the inputs for ONNX, and turn a mismatch with
``forward`` into one clear error, so that no verb keeps its own copy of this logic.

A *batch* of data is ``inputs`` alone or ``(inputs, target)``: see ``split_batch``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class TwoInputs(nn.Module):
    ...     def forward(self, input_ids, attention_mask):
    ...         return input_ids.float() * attention_mask
    >>> inputs = {"input_ids": torch.ones(4, 3), "attention_mask": torch.ones(4, 3)}
    >>> call_model(TwoInputs(), slice_batch(inputs, 1)).shape
    torch.Size([1, 3])
    >>> input_names(TwoInputs(), (torch.ones(1, 3), torch.ones(1, 3)))
    ['input_ids', 'attention_mask']
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import DeepslimError

HINT = "pass a tensor, a tuple of tensors (positional arguments) or a dict of tensors (keyword arguments)"


def as_args_kwargs(inputs) -> tuple[tuple, dict]:
    """``inputs`` as ``(args, kwargs)`` for ``model(*args, **kwargs)``."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, Mapping):
        bad = [k for k in inputs if not isinstance(k, str)]
        if bad:
            raise DeepslimError(f"input dict keys must be argument names (str), got {bad[0]!r}", hint=HINT)
        return (), dict(inputs)
    if isinstance(inputs, (tuple, list)):
        if not inputs:
            raise DeepslimError("the inputs are an empty tuple", hint=HINT)
        return tuple(inputs), {}
    raise DeepslimError(f"inputs must be a tensor, a tuple or a dict, got {type(inputs).__name__}", hint=HINT)


def tensors(inputs) -> list[torch.Tensor]:
    """The tensors among ``inputs``, in argument order."""
    args, kwargs = as_args_kwargs(inputs)
    return [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]


def _map(inputs, fn):
    """``inputs`` with ``fn`` applied to every tensor, same structure (other values kept as they are)."""
    def one(v):
        return fn(v) if isinstance(v, torch.Tensor) else v

    if isinstance(inputs, torch.Tensor):
        return fn(inputs)
    if isinstance(inputs, Mapping):
        return {k: one(v) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return tuple(one(v) for v in inputs)
    as_args_kwargs(inputs)  # raises the clear error
    return inputs


def map_tensors(inputs, fn):
    """``inputs`` (a tensor, tuple, list or dict) with ``fn`` applied to every tensor, same structure.

    Example:
        >>> map_tensors({"ids": torch.ones(2), "n": 3}, lambda t: t * 2)["ids"].tolist()
        [2.0, 2.0]
    """
    return _map(inputs, fn)


def batch_size(inputs) -> int:
    """The shared first dimension of every tensor in ``inputs``; refuses disagreeing batch sizes."""
    sizes = {tuple(t.shape[:1]) for t in tensors(inputs) if t.ndim > 0}
    if not sizes:
        raise DeepslimError("the inputs hold no tensor with a batch dimension", hint=HINT)
    if len(sizes) > 1:
        raise DeepslimError(f"the input tensors disagree on the batch size: {sorted(s[0] for s in sizes)}",
                            hint="every input's first dimension is the batch; give them the same length")
    return sizes.pop()[0]


def slice_batch(inputs, stop: int, start: int = 0):
    """Samples ``start:stop`` of every tensor (the batch is the first dimension)."""
    batch_size(inputs)
    return _map(inputs, lambda t: t[start:stop] if t.ndim > 0 else t)


def repeat_batch(inputs, n: int):
    """A batch of ``n`` samples made by repeating the first sample (for latency at batch n)."""
    one = slice_batch(inputs, 1)
    return _map(one, lambda t: t.expand(n, *t.shape[1:]).contiguous() if t.ndim > 0 else t)


def concat_batches(batches: list):
    """Join batches of the same structure along the batch dimension."""
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(batches)
    if isinstance(first, Mapping):
        return {k: torch.cat([b[k] for b in batches]) if isinstance(first[k], torch.Tensor) else first[k]
                for k in first}
    return tuple(torch.cat([b[i] for b in batches]) if isinstance(v, torch.Tensor) else v
                 for i, v in enumerate(first))


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device``. Copies onto a GPU are asynchronous; copies to the CPU are not, because
    a non-blocking device-to-host copy returns before the data has arrived (read too early, it holds
    garbage: seen on an H100 as wrong metrics and NaN losses).

    Example:
        >>> to_device(torch.ones(2), "cpu").device.type
        'cpu'
    """
    return tensor.to(device, non_blocking=device is not None and torch.device(device).type != "cpu")


def move_inputs(inputs, device: torch.device | str):
    """``inputs`` on ``device`` (same structure)."""
    return _map(inputs, lambda t: to_device(t, device))


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters (else buffers) live; CPU for a model with neither."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)  # called every training step
    return first.device if first is not None else torch.device("cpu")


def _forward_signature(model: nn.Module) -> inspect.Signature | None:
    try:
        return inspect.signature(model.forward)
    except (TypeError, ValueError):  # builtins, some scripted modules
        return None


def _describe(signature: inspect.Signature) -> str:
    return "forward(" + ", ".join(signature.parameters) + ")"


def check_inputs(model: nn.Module, inputs) -> None:
    """Refuse inputs that ``forward`` cannot take, naming its parameters (before any work is done)."""
    args, kwargs = as_args_kwargs(inputs)
    signature = _forward_signature(model)
    if signature is None:
        return
    params = signature.parameters
    takes_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params and not takes_var_kw]
    if unknown:
        raise DeepslimError(f"{type(model).__name__}.{_describe(signature)} takes no argument named "
                            f"{', '.join(repr(k) for k in unknown)}",
                            hint="rename or drop that key of the input dict")
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise DeepslimError(f"the inputs do not match {type(model).__name__}.{_describe(signature)}: {exc}",
                            hint=HINT) from None


def call_model(model: nn.Module, inputs):
    """``model(*args, **kwargs)`` for any form of ``inputs``, moved to the model's device first."""
    args, kwargs = as_args_kwargs(move_inputs(inputs, model_device(model)))
    return model(*args, **kwargs)


def input_names(model: nn.Module, inputs) -> list[str]:
    """Names of the tensor inputs, for ONNX: the dict keys, else ``forward``'s parameter names."""
    args, kwargs = as_args_kwargs(inputs)
    if kwargs:
        return [k for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
    signature = _forward_signature(model)
    names = [p.name for p in signature.parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)] if signature else []
    if len(names) < len(args) or len(args) == 1 and not names:
        names = ["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))]
    return [n for n, v in zip(names, args) if isinstance(v, torch.Tensor)]


def output_tensors(outputs) -> list[torch.Tensor]:
    """The tensors a model returned: a tensor, a tuple/list of tensors, or a dict of them (e.g. a Hugging
    Face ``ModelOutput``); ``None`` entries are skipped. Anything else is refused."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, Mapping):
        values = list(outputs.values())
    elif isinstance(outputs, (tuple, list)):
        values = list(outputs)
    else:
        values = None
    if values is not None:
        found = []
        for v in values:
            if v is None:
                continue
            if isinstance(v, torch.Tensor):
                found.append(v)
            elif isinstance(v, (tuple, list, Mapping)):
                found.extend(output_tensors(v))
            else:
                values = None
                break
        if values is not None and found:
            return found
    raise DeepslimError(f"the model returned {type(outputs).__name__}, which holds values that are not tensors",
                        hint="supported outputs: a tensor, a tuple/list of tensors, or a dict of tensors "
                             "(e.g. a Hugging Face ModelOutput); wrap the model to return one of these")


def describe_shapes(inputs) -> str:
    """The shapes of ``inputs`` for error messages: ``(1, 3, 28, 28)`` for a tensor, ``(2, 7), (2, 7)`` for
    positional arguments, ``input_ids (2, 7), attention_mask (2, 7)`` for keyword arguments.

    Example:
        >>> describe_shapes({"input_ids": torch.zeros(2, 7), "attention_mask": None})
        'input_ids (2, 7), attention_mask None'
    """
    def one(v) -> str:
        return str(tuple(v.shape)) if isinstance(v, torch.Tensor) else repr(v) if v is None else type(v).__name__

    if isinstance(inputs, torch.Tensor):
        return one(inputs)
    args, kwargs = as_args_kwargs(inputs)
    return ", ".join([one(v) for v in args] + [f"{k} {one(v)}" for k, v in kwargs.items()])


def structure(inputs) -> tuple:
    """A hashable description of the form of ``inputs`` (kind, names/arity, ranks): batches of one data
    source must share it."""
    args, kwargs = as_args_kwargs(inputs)
    kind = "tensor" if isinstance(inputs, torch.Tensor) else ("dict" if kwargs else "tuple")
    ranks = tuple((k, v.ndim if isinstance(v, torch.Tensor) else type(v).__name__)
                  for k, v in (*enumerate(args), *kwargs.items()))
    return kind, ranks


@dataclass
class Batch:
    """An explicit ``(inputs, target)`` pair; ``target`` may be ``None`` (unlabelled data)."""

    inputs: Any
    target: Any = None


def split_batch(batch) -> tuple[Any, Any]:
    """``(inputs, target)`` of one batch of data.

    A batch is a ``Batch``, a 2-tuple ``(inputs, target)``, or ``inputs`` alone (a tensor or a dict;
    ``target`` is then ``None``). A model with several positional inputs and no target therefore
    gives its batches as ``((a, b), None)`` or ``Batch((a, b))``.

    Example:
        >>> import torch
        >>> split_batch((torch.zeros(2, 3), torch.tensor([0, 1])))[1].tolist()
        [0, 1]
        >>> split_batch({"x": torch.zeros(2, 3)})[1] is None
        True
    """
    if isinstance(batch, Batch):
        return batch.inputs, batch.target
    if isinstance(batch, (torch.Tensor, Mapping)):
        return batch, None
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise DeepslimError(f"a batch must be inputs or (inputs, target), got a {type(batch).__name__}"
                        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""),
                        hint="yield (inputs, target) pairs; for several positional inputs without a target, "
                             "yield ((a, b), None)")


def check_same_structure(batches) -> None:
    """Refuse a data source whose batches mix forms (e.g. a tensor, then a dict)."""
    seen = None
    for i, batch in enumerate(batches):
        inputs, _ = split_batch(batch)
        form = structure(inputs)
        if seen is None:
            seen = form
        elif form != seen:
            raise DeepslimError(f"batch {i} of the data has a different structure from batch 0: {form} vs {seen}",
                                hint="every batch must have the same form (same argument names and ranks)")
