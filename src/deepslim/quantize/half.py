"""Half precision for GPU deployment: float16 or bfloat16 weights, float32 in and out.

``to_half`` returns a copy whose weights (and computation) are in half precision, wrapped so
that callers keep passing and receiving float32 tensors; saved with ``deepslim.save`` it takes
half the bytes and loads back in half precision. ``export_half_onnx`` writes the float16 ONNX
file a GPU runtime (ONNX Runtime's CUDA provider, TensorRT) runs with half-precision kernels,
converted by ONNX Runtime's own ``float16`` tool with float32 inputs and outputs kept.

What it buys is a GPU matter. Measured on an H100 (BENCHMARKS.md, "GPU check"): float16 weights
made the flagship 1.42x faster at batch 1024 but slower at batch 1 and 64, where kernel launches,
not arithmetic, set the time. On a CPU there is nothing to gain: PyTorch's float16 convolutions are
slow there, and ONNX Runtime's CPU provider computes a float16 graph in float32 behind casts (the
same time as float32, half the file).

Example:
    >>> import deepslim, torch
    >>> half = to_half(deepslim.create_model("lenet5"), "bfloat16")
    >>> half(torch.randn(2, 1, 28, 28)).dtype, next(half.parameters()).dtype
    (torch.float32, torch.bfloat16)
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..core import Config, DeepslimError, SerializableModule
from ..core.inputs import map_tensors

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class HalfPrecision(Config):
    """Store and run the model in ``dtype`` (``float16`` or ``bfloat16``), for GPU deployment."""

    dtype: str = "float16"

    def __post_init__(self):
        self.check_choice("dtype", tuple(DTYPES))


class HalfModel(SerializableModule):
    """``model`` with its weights in ``dtype``: float inputs are cast to ``dtype`` on the way in, float
    outputs back to float32 on the way out, so it is a drop-in replacement for the float32 model."""

    def __init__(self, dtype: str = "float16"):
        super().__init__()
        if dtype not in DTYPES:
            raise DeepslimError(f"unknown half-precision dtype '{dtype}'", hint=f"use {' or '.join(DTYPES)}")
        self.dtype_name = dtype
        self.model: nn.Module = nn.Identity()
        # deepslim.load builds this module in float32 and copies the saved (half) weights into it: cast back
        self.register_load_state_dict_post_hook(_back_to_half)

    def forward(self, *args, **kwargs):
        dtype = DTYPES[self.dtype_name]

        def to_half(t):
            return t.to(dtype) if t.is_floating_point() else t

        outputs = self.model(*map_tensors(args, to_half), **(map_tensors(kwargs, to_half) if kwargs else {}))
        return _to_float32(outputs)


def _to_float32(outputs):
    """Floating tensors in ``outputs`` back to float32, keeping the container's own type (a Hugging Face
    ``ModelOutput``, a namedtuple, a list)."""
    def one(value):
        return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    if isinstance(outputs, torch.Tensor):
        return one(outputs)
    if isinstance(outputs, dict):
        converted = copy.copy(outputs)  # same class; ModelOutput keeps its attributes in step with its items
        for key, value in outputs.items():
            converted[key] = one(value)
        return converted
    if isinstance(outputs, tuple) and hasattr(outputs, "_fields"):
        return type(outputs)(*(one(v) for v in outputs))
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(one(v) for v in outputs)
    return outputs


def _back_to_half(module: HalfModel, _incompatible_keys) -> None:
    module.to(DTYPES[module.dtype_name])


def to_half(model: nn.Module, dtype: str = "float16") -> HalfModel:
    """A copy of ``model`` in half precision (``float16`` or ``bfloat16``), taking and giving float32."""
    half = HalfModel(dtype)
    half.model = copy.deepcopy(model).to(DTYPES[dtype])
    return half.train(model.training)


def export_half_onnx(model: nn.Module, path: str | Path, example_inputs) -> dict:
    """Write ``model`` (float32) as a float16 ONNX file with float32 inputs and outputs; returns the
    ``export_onnx`` record of the float32 export it was converted from.

    ONNX Runtime's converter keeps float32 casts at the inputs and outputs (``keep_io_types``), so the
    file takes what the float32 model took. bfloat16 has no such converter, hence float16 only.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from ..export.files import write_atomic
    from ..export.onnx import export_onnx

    with tempfile.TemporaryDirectory(prefix="deepslim-half-") as tmp:
        record = export_onnx(model, Path(tmp) / "fp32.onnx", example_inputs)
        try:
            half = convert_float_to_float16(onnx.load(str(Path(tmp) / "fp32.onnx")), keep_io_types=True)
        except Exception as exc:  # the converter's own errors (an op it cannot handle, a graph over 2 GB)
            raise DeepslimError(f"ONNX Runtime's float16 converter failed: {type(exc).__name__}: "
                                f"{(str(exc).splitlines() or [''])[0][:200]}",
                                hint="ship the float32 or int8 model instead (drop the half stage)") from exc
    write_atomic(Path(path), lambda p: onnx.save(half, str(p)))
    return record
