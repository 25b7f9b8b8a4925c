"""What every stage is measured on: full-test accuracy, MACs, params, size and latency.

Float stages run on PyTorch and ONNX Runtime (their ONNX export); int8 stages run as the
deployed int8 ONNX model on ONNX Runtime only (their PyTorch twin merely simulates
integer arithmetic, so timing it would say nothing about deployment).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..export.onnx import evaluate_onnx
from ..profiling.counting import count_ops
from ..profiling.latency import measure_latency
from ..train.evaluate import evaluate

BATCH_SIZES = (1, 64)


def ships_onnx_file(record: dict) -> bool:
    """Whether a stage record ships an int8 or float16 ONNX file rather than its float32 model (then the
    ONNX file is what counts, and an int8 stage's weights file is only its float twin)."""
    return bool(record.get("int8")) or record.get("precision", "float32") != "float32"


def layer_macs(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """MACs per leaf layer (for the report's before/after chart)."""
    return {layer.name: layer.macs for layer in count_ops(model.eval(), (example,)).layers if layer.macs}


def measure(model: nn.Module, onnx_path: Path, data, example: torch.Tensor, *, precision: str | None = None,
            macs: int | None = None, latency_seconds: float = 1.0, device=None) -> dict:
    """Stage metrics: ``accuracy``, ``macs``, ``params``, ``size_bytes`` (the ONNX file) and
    ``latency_ms[runtime][batch]`` (median, ms per batch). With ``precision`` (``"int8"``,
    ``"float16"``) ``onnx_path`` is what the stage ships and alone is measured: its accuracy on ONNX
    Runtime, no PyTorch timing (the twin only simulates it). ``macs`` overrides the count for such
    stages (quantization keeps the multiply-adds, in integer arithmetic).
    """
    int8 = precision is not None  # a deployed ONNX file (int8 or float16): measured as it ships
    model = model.eval()
    cpu_example = example[:1].cpu()
    if int8:
        accuracy = evaluate_onnx(onnx_path, data.test)["accuracy"]
    else:
        accuracy = evaluate(model, data.test, device=device or "cpu", desc="test")["accuracy"]
    latency: dict[str, dict[str, float]] = {}
    rows = measure_latency(onnx_path, cpu_example, batch_sizes=BATCH_SIZES, runtimes=("onnxruntime",),
                           min_seconds=latency_seconds)
    if not int8:
        rows += measure_latency(model.cpu(), cpu_example, batch_sizes=BATCH_SIZES, runtimes=("torch",),
                                min_seconds=latency_seconds)
    for row in rows:
        latency.setdefault(row.runtime, {})[str(row.batch_size)] = row.median_ms
    return {"accuracy": accuracy,
            "macs": macs if macs is not None else count_ops(model.cpu(), (cpu_example,)).macs,
            "params": sum(p.numel() for p in model.parameters()),
            "nonzero_params": sum(int(torch.count_nonzero(p)) for p in model.parameters()),
            "size_bytes": Path(onnx_path).stat().st_size, "latency_ms": latency,
            "runtime": f"onnxruntime {precision}" if int8 else "pytorch / onnxruntime fp32"}
