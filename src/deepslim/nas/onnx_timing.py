"""Timing small ONNX models on ONNX Runtime one session at a time: the latency table's measurements.

Example:
    >>> time_onnx("runs/ofa/parts/stem.onnx", (1, 28, 28), (1, 64))      # doctest: +SKIP
    {1: 0.012, 64: 0.31}
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core import progress


def randomise_bn_(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics (the exporter folds them; values only have to be finite)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def export_part(model: nn.Module, path: Path, input_shape: tuple[int, ...]) -> Path:
    from ..export.onnx import export_onnx

    export_onnx(model.eval(), path, torch.randn(1, *input_shape), check=False)
    return path


def time_onnx(path: str | Path, input_shape: tuple[int, ...], batch_sizes, *, threads: int = 2,
              min_seconds: float = 0.2, warmup: int = 5, min_repeats: int = 5) -> dict[int, float]:
    """Median ms per call of the ONNX file at each batch size, on one ORT session with ``threads`` threads.

    One session at a time, made, warmed and timed here, then dropped: no other session's idle threads
    spin on the cores meanwhile (see ``profiling.latency._take_turn``).
    """
    from ..export.onnx import onnx_session

    session = onnx_session(path, threads=threads)
    name = session.get_inputs()[0].name
    out = {}
    for batch in batch_sizes:
        feed = {name: np.random.default_rng(0).standard_normal((batch, *input_shape)).astype(np.float32)}
        for _ in range(warmup):
            session.run(None, feed)
        samples, started = [], time.perf_counter()
        while len(samples) < min_repeats or time.perf_counter() - started < min_seconds:
            t0 = time.perf_counter()
            session.run(None, feed)
            samples.append((time.perf_counter() - t0) * 1000.0)
        out[int(batch)] = float(statistics.median(samples))
    del session
    return out


def time_parts(items: list[tuple[str, Path, tuple]], batch_sizes, threads, min_seconds, rounds,
               desc: str) -> dict[str, dict[int, float]]:
    """Median over ``rounds`` sweeps (every item once per sweep, in turn, so slow drifts hit all alike)."""
    per_round: dict[str, list[dict[int, float]]] = {key: [] for key, _, _ in items}
    for r in range(rounds):
        for key, path, shape in progress(items, desc=f"{desc} {r + 1}/{rounds}"):
            per_round[key].append(time_onnx(path, shape, batch_sizes, threads=threads, min_seconds=min_seconds))
    return {key: {b: float(statistics.median(t[b] for t in runs)) for b in batch_sizes}
            for key, runs in per_round.items()}
