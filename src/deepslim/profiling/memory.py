"""Memory of a model: parameter bytes by dtype and peak live activations of a forward pass."""

from __future__ import annotations

import weakref
from collections import defaultdict

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..core.inputs import as_args_kwargs, check_inputs, model_device, move_inputs, tensors
from .counting import math_attention


def param_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of parameters and buffers, keyed by dtype name (e.g. ``{"float32": 4913576}``).

    Example:
        >>> param_bytes(nn.Linear(2, 2))
        {'float32': 24}
    """
    out: dict[str, int] = defaultdict(int)
    for tensor in list(model.parameters()) + list(model.buffers()):
        out[str(tensor.dtype).replace("torch.", "")] += tensor.numel() * tensor.element_size()
    return dict(out)


class _LiveTensorTracker(TorchDispatchMode):
    """Tracks the bytes of storages created during a forward pass and alive at the same time.

    Why not a memory profiler: on CPU PyTorch has no allocator statistics; counting the
    storages that ops return, and releasing them when their last tensor dies (CPython's
    reference counting makes that immediate), gives the peak of live activations.
    """

    def __init__(self, baseline_bytes: int, known: set[int]):
        super().__init__()
        self.live = baseline_bytes
        self.peak = baseline_bytes
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.known = known  # parameters, buffers and inputs: not activations created here

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.live -= self.sizes.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key in self.known or key == 0:
                continue
            if key not in self.refs:
                self.refs[key] = 0
                self.sizes[key] = storage.nbytes()
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            self.refs[key] += 1
            weakref.finalize(tensor, self._release, key)
        return out


def peak_activation_bytes(model: nn.Module, example_inputs) -> int:
    """Peak bytes of tensors alive at once during one inference forward pass, inputs included.

    ``example_inputs`` is a tensor, a tuple (positional arguments) or a dict (keyword arguments).

    Example:
        >>> peak_activation_bytes(nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 30)), torch.randn(1, 10))
        240
    """
    check_inputs(model, example_inputs)
    example_inputs = move_inputs(example_inputs, model_device(model))
    args, kwargs = as_args_kwargs(example_inputs)
    given = tensors(example_inputs)
    input_bytes = sum(t.numel() * t.element_size() for t in given)
    known = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    known |= {t.untyped_storage().data_ptr() for t in given}
    tracker = _LiveTensorTracker(input_bytes, known)
    with torch.inference_mode(), math_attention(), tracker:
        output = model(*args, **kwargs)
    del output
    return tracker.peak
