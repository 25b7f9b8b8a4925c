"""What every stage is measured on: its score on the whole test split (accuracy, or a retrieval
run's recall@1), MACs, params, size and latency; the task (``tasks.py``) says how.

Float stages run on PyTorch and ONNX Runtime (their ONNX export); int8 and float16 stages run
as the deployed ONNX model on ONNX Runtime only (their PyTorch twin is not what ships, so timing
it would say nothing about deployment).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..core.inputs import move_inputs
from ..profiling.counting import count_ops
from ..profiling.latency import measure_latency


def ships_onnx_file(record: dict) -> bool:
    """Whether a stage record ships an int8 or float16 ONNX file rather than its float32 model (then the
    ONNX file is what counts, and an int8 stage's weights file is only its float twin)."""
    return bool(record.get("int8")) or record.get("precision", "float32") != "float32"


def layer_macs(model: nn.Module, example) -> dict[str, int]:
    """MACs per leaf layer (for the report's before/after chart); ``example`` in any input form."""
    return {layer.name: layer.macs for layer in count_ops(model.eval(), move_inputs(example, "cpu")).layers
            if layer.macs}


def measure(model: nn.Module, onnx_path: Path, task, *, precision: str | None = None, macs: int | None = None,
            latency_seconds: float = 1.0, device=None) -> dict:
    """Stage metrics: ``accuracy`` (a retrieval run's recall@1, with ``retrieval`` beside it), ``macs``,
    ``params``, ``size_bytes`` (the ONNX file) and ``latency_ms[runtime][batch]`` (median, ms per batch,
    at the task's batch sizes and inputs). With ``precision`` (``"int8"``, ``"float16"``) ``onnx_path``
    is what the stage ships and alone is measured: its score on ONNX Runtime, no PyTorch timing (the
    twin is not what ships). ``macs`` overrides the count for such stages (quantization keeps the
    multiply-adds, in integer arithmetic).
    """
    model = model.eval()
    deployed = precision is not None  # a deployed ONNX file (int8 or float16): measured as it ships
    scores = task.score_onnx(onnx_path) if deployed else task.score(model, device)
    latency: dict[str, dict[str, float]] = {}
    rows = []
    for batch, inputs in task.latency_cases():
        rows += measure_latency(onnx_path, inputs, batch_sizes=(batch,), runtimes=("onnxruntime",),
                                min_seconds=latency_seconds)
        if not deployed:
            rows += measure_latency(model.cpu(), inputs, batch_sizes=(batch,), runtimes=("torch",),
                                    min_seconds=latency_seconds)
    for row in rows:
        latency.setdefault(row.runtime, {})[str(row.batch_size)] = row.median_ms
    return {**scores,
            "macs": macs if macs is not None else task.macs(model),
            "params": sum(p.numel() for p in model.parameters()),
            "nonzero_params": sum(int(torch.count_nonzero(p)) for p in model.parameters()),
            "size_bytes": Path(onnx_path).stat().st_size, "latency_ms": latency,
            "runtime": f"onnxruntime {precision}" if deployed else "pytorch / onnxruntime fp32"}
