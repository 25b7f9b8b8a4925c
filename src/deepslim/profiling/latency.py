"""Latency on real runtimes (PyTorch eager and ONNX Runtime), per shared/BENCHMARKING.md.

Warm up (>= 10 calls), then repeat until at least ``min_seconds`` have passed; report the
median and interquartile range in ms, with the thread count. ``compare_latency`` times two
models interleaved (A B A B ...) in one process and reports the median ratio and its
min-max spread, the only form in which deepslim states a speed-up; ``interleave_latency``
times several models in turns so that every pair compares on the same rounds, and
``describe_speedup`` is the one wording of a result ("no measurable change" when the spread
includes 1.0x).
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..core import DeepslimError
from ..core.inputs import as_args_kwargs, check_inputs, model_device, move_inputs, repeat_batch
from .gpu_latency import GPU_RUNTIMES, check_gpu_runtime, ort_gpu_runner, torch_gpu_runner

RUNTIMES = ("torch", "onnxruntime")  # the CPU ones, the default; GPU_RUNTIMES (gpu_latency.py) on a CUDA machine
ONNX_RUNTIMES = ("onnxruntime", "onnxruntime-cuda")


@dataclass
class LatencyResult:
    runtime: str
    batch_size: int
    median_ms: float
    p25_ms: float
    p75_ms: float
    repeats: int
    threads: int

    @property
    def iqr_ms(self) -> float:
        return self.p75_ms - self.p25_ms

    def to_dict(self) -> dict:
        return {**self.__dict__, "iqr_ms": self.iqr_ms}


def _quartiles(samples: list[float]) -> tuple[float, float, float]:
    q = np.percentile(np.asarray(samples), [25, 50, 75])
    return float(q[1]), float(q[0]), float(q[2])


def default_threads() -> int:
    return torch.get_num_threads()


def _torch_runner(model: nn.Module, example, threads: int) -> Callable[[], None]:
    model = model.eval()
    device = model_device(model)
    args, kwargs = as_args_kwargs(move_inputs(example, device))

    def run() -> None:
        with torch.inference_mode():
            model(*args, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run


class _torch_threads:
    """Run a block with PyTorch's intra-op thread count set, restoring it afterwards."""

    def __init__(self, threads: int):
        self.threads, self.previous = threads, None

    def __enter__(self):
        self.previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        torch.set_num_threads(self.previous)


def _onnx_runner(path: Path, example, threads: int, spinning: bool = True) -> Callable[[], None]:
    from ..export.onnx import onnx_session
    from ..export.onnx_io import ort_feed

    session = onnx_session(path, threads=threads, spinning=spinning)
    feed = ort_feed(session, example)

    def run() -> None:
        session.run(None, feed)

    return run


class _OnnxFile:
    """An ONNX file for a model: the given path, or a temporary export deleted afterwards."""

    def __init__(self, model_or_path, example):
        self.model_or_path, self.example, self.tmpdir = model_or_path, example, None

    def __enter__(self) -> Path:
        if isinstance(self.model_or_path, (str, Path)):
            return Path(self.model_or_path)
        from ..export.onnx import export_onnx

        self.tmpdir = tempfile.TemporaryDirectory(prefix="deepslim-latency-")
        path = Path(self.tmpdir.name) / "model.onnx"
        export_onnx(self.model_or_path, path, self.example, check=False)
        return path

    def __exit__(self, *exc) -> None:
        if self.tmpdir is not None:
            self.tmpdir.cleanup()


def _named(model_or_path, example):
    """``example`` with positional inputs named as the temporary ONNX export names them, so that ORT feeds
    go by name even when the exporter drops an input the graph does not use."""
    if isinstance(model_or_path, nn.Module) and not isinstance(example, (torch.Tensor, dict)):
        from ..export.onnx_io import onnx_input_names

        args, _ = as_args_kwargs(example)
        if all(isinstance(a, torch.Tensor) for a in args):
            return dict(zip(onnx_input_names(model_or_path, example), args))
    return example


def _check_model_inputs(model_or_path, example_inputs) -> None:
    if isinstance(model_or_path, nn.Module):
        check_inputs(model_or_path, example_inputs)


def _check_runtimes(runtimes, model_or_path) -> None:
    for runtime in runtimes:
        if runtime not in RUNTIMES + GPU_RUNTIMES:
            raise DeepslimError(f"unknown runtime '{runtime}'", hint=f"choose from {', '.join(RUNTIMES + GPU_RUNTIMES)}")
        if runtime in GPU_RUNTIMES:
            check_gpu_runtime(runtime)
        if runtime not in ONNX_RUNTIMES and isinstance(model_or_path, (str, Path)):
            raise DeepslimError("an ONNX file can only be timed on onnxruntime", hint="pass runtimes=('onnxruntime',)")


def _runner(runtime: str, model_or_path, onnx_path, x, threads: int) -> Callable[[], float | None]:
    """A callable making one call on ``runtime``; GPU runners return the call's own time (CUDA events)."""
    if runtime == "torch":
        return _torch_runner(model_or_path, x, threads)
    if runtime == "onnxruntime":
        return _onnx_runner(onnx_path, _named(model_or_path, x), threads)
    if runtime == "onnxruntime-cuda":
        return ort_gpu_runner(onnx_path, _named(model_or_path, x))
    return torch_gpu_runner(model_or_path, x, runtime)


def _elapsed_ms(run: Callable[[], float | None]) -> float:
    """One call's ms: what a GPU runner measured with CUDA events, else the host clock's."""
    t0 = time.perf_counter()
    measured = run()
    return measured if measured is not None else (time.perf_counter() - t0) * 1000.0


def _time_calls(run: Callable[[], float | None], warmup: int, min_seconds: float, min_repeats: int) -> list[float]:
    for _ in range(warmup):
        run()
    samples, started = [], time.perf_counter()
    while len(samples) < min_repeats or time.perf_counter() - started < min_seconds:
        samples.append(_elapsed_ms(run))
    return samples


def measure_latency(model_or_onnx_path, example_inputs, *, batch_sizes=(1, 64), runtimes=RUNTIMES,
                    threads: int | None = None, warmup: int = 10, min_seconds: float = 1.0,
                    min_repeats: int = 10) -> list[LatencyResult]:
    """Median and IQR latency (ms per batch) for each runtime and batch size.

    ``model_or_onnx_path`` is an ``nn.Module`` (timed on torch and, after a temporary ONNX
    export, on onnxruntime) or the path of an ONNX file (onnxruntime only). ``example_inputs``
    is a tensor, a tuple (positional arguments) or a dict (keyword arguments, fed to ONNX
    Runtime by name); batch n is the first sample repeated n times (``repeat_batch``), so
    for token ids and a mask batch 64 is the one sequence 64 times.

    Example:
        >>> import deepslim, torch
        >>> rows = measure_latency(deepslim.create_model("lenet5"), torch.randn(1, 1, 28, 28), min_seconds=0.1)
        >>> sorted({(r.runtime, r.batch_size) for r in rows})
        [('onnxruntime', 1), ('onnxruntime', 64), ('torch', 1), ('torch', 64)]
    """
    _check_runtimes(runtimes, model_or_onnx_path)
    _check_model_inputs(model_or_onnx_path, example_inputs)
    threads = threads or default_threads()
    results = []
    with _torch_threads(threads), contextlib.ExitStack() as stack:
        onnx_path = (stack.enter_context(_OnnxFile(model_or_onnx_path, repeat_batch(example_inputs, 1)))
                     if set(runtimes) & set(ONNX_RUNTIMES) else None)
        for runtime in runtimes:
            for bs in batch_sizes:
                x = repeat_batch(example_inputs, bs)
                run = _runner(runtime, model_or_onnx_path, onnx_path, x, threads)
                samples = _time_calls(run, warmup, min_seconds, min_repeats)
                median, p25, p75 = _quartiles(samples)
                results.append(LatencyResult(runtime, bs, median, p25, p75, len(samples), threads))
    return results


def _take_turn(run: Callable[[], float | None], calls: int, settle_ms: float, settle_calls: int) -> float:
    """Mean ms per call over ``calls`` timed calls, after a pause and untimed calls.

    Two ONNX Runtime sessions each own a thread pool whose idle threads busy-wait after a
    call (ORT's default, kept because deployments run with it) for tens of milliseconds
    (2^20 spin iterations). Timed in strict A B A B turns, the idle session's spinners took
    cores from the other's calls (the flagship's batch-1 time rose from 0.52 ms alone to
    1.48 ms); turning spinning off instead adds a thread wake-up to every call (0.77 ms).
    A pause longer than the spin window lets the previous session's threads go to sleep and
    the untimed calls wake this session's pool, so each turn sees the model as it runs alone
    (``benchmarks/ort_interleave_check.py``: 0.56 ms and 0.12 ms turn by turn against 0.52
    and 0.11 ms alone).
    """
    if settle_ms:
        time.sleep(settle_ms / 1000.0)
    for _ in range(settle_calls):
        run()
    t0 = time.perf_counter()
    measured = [run() for _ in range(calls)]
    host_ms = (time.perf_counter() - t0) * 1000.0 / calls
    return sum(measured) / calls if measured and measured[0] is not None else host_ms  # GPU: CUDA events


@dataclass
class LatencyComparison:
    runtime: str
    batch_size: int
    baseline_ms: float
    candidate_ms: float
    speedup: float          # median of per-round baseline/candidate ratios
    speedup_min: float
    speedup_max: float
    rounds: int
    threads: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def speedup_verdict(row) -> str:
    """``"faster"``, ``"slower"`` or ``"no change"`` for a comparison (a ``LatencyComparison`` or its dict).

    Judged on the min-max spread of the per-round ratios, not the median alone: a spread
    that includes 1.0x means the rounds disagree on which model is faster.
    """
    row = row.to_dict() if isinstance(row, LatencyComparison) else row
    if row["speedup_min"] > 1.0:
        return "faster"
    if row["speedup_max"] < 1.0:
        return "slower"
    return "no change"


def describe_speedup(row) -> str:
    """The one wording of a speed-up deepslim prints: median, spread and rounds, and what they mean.

    Example:
        >>> row = {"speedup": 4.71, "speedup_min": 2.43, "speedup_max": 5.47, "rounds": 64}
        >>> describe_speedup(row)
        '4.71x faster [2.43-5.47], 64 rounds'
        >>> describe_speedup(row | {"speedup": 1.2, "speedup_min": 0.69, "speedup_max": 1.94, "rounds": 9})
        'no measurable change (1.20x [0.69-1.94], 9 rounds)'
        >>> describe_speedup(row | {"speedup": 0.8, "speedup_min": 0.7, "speedup_max": 0.9, "rounds": 9})
        '1.25x slower (0.80x [0.70-0.90], 9 rounds)'
    """
    row = row.to_dict() if isinstance(row, LatencyComparison) else row
    spread = f"[{row['speedup_min']:.2f}-{row['speedup_max']:.2f}], {row['rounds']} round" + \
             ("s" if row["rounds"] != 1 else "")
    verdict = speedup_verdict(row)
    if verdict == "faster":
        return f"{row['speedup']:.2f}x faster {spread}"
    if verdict == "slower":
        return f"{1 / row['speedup']:.2f}x slower ({row['speedup']:.2f}x {spread})"
    return f"no measurable change ({row['speedup']:.2f}x {spread})"


@dataclass
class InterleavedTimes:
    """Per-round times (ms per call) of several models timed in turns, for one runtime and batch size."""

    runtime: str
    batch_size: int
    threads: int
    times_ms: list          # times_ms[model][round]

    def compare(self, baseline: int, candidate: int) -> LatencyComparison:
        """Model ``candidate``'s speed-up over model ``baseline`` from the same rounds."""
        base_t, cand_t = self.times_ms[baseline], self.times_ms[candidate]
        ratios = [b / c for b, c in zip(base_t, cand_t)]
        return LatencyComparison(self.runtime, self.batch_size, statistics.median(base_t), statistics.median(cand_t),
                                 statistics.median(ratios), min(ratios), max(ratios), len(ratios), self.threads)


def interleave_latency(models, example_inputs, *, batch_sizes=(1, 64), runtimes=RUNTIMES, threads: int | None = None,
                       warmup: int = 10, min_seconds: float = 1.0, calls_per_round: int = 5, settle_ms: float = 100.0,
                       settle_calls: int = 2, turn_ms: float = 25.0) -> list[InterleavedTimes]:
    """Time several models in turns (A B C A B C ...): every pair can then be compared on the same rounds.

    Rounds run for at least ``len(models) * min_seconds`` (so each model gets about as many
    rounds as in a two-model ``compare_latency``) and at least 5 rounds; see
    ``compare_latency`` for the turns themselves.

    Example:
        >>> import deepslim, torch
        >>> models = [deepslim.create_model(n) for n in ("resnet8", "lenet5", "fmnist-cnn")]
        >>> (times,) = interleave_latency(models, torch.randn(1, 1, 28, 28), batch_sizes=(1,), runtimes=("torch",),
        ...                               min_seconds=0.05)
        >>> times.compare(0, 2).rounds >= 5
        True
    """
    models = list(models)
    if len(models) < 2:
        raise DeepslimError("an interleaved comparison needs at least two models")
    for model in models:
        _check_runtimes(runtimes, model)
        _check_model_inputs(model, example_inputs)
    threads = threads or default_threads()
    results = []
    one = repeat_batch(example_inputs, 1)
    with _torch_threads(threads), contextlib.ExitStack() as stack:
        paths = ([stack.enter_context(_OnnxFile(m, one)) for m in models] if set(runtimes) & set(ONNX_RUNTIMES)
                 else [None] * len(models))
        for runtime in runtimes:
            for bs in batch_sizes:
                x = repeat_batch(example_inputs, bs)
                runs = [_runner(runtime, m, p, x, threads) for m, p in zip(models, paths)]
                warm_ms = [_take_turn(run, warmup, 0.0, 0) for run in runs]
                calls, settle = calls_per_round, (0.0, 0)  # torch: one intra-op pool serves all models
                if runtime == "onnxruntime":
                    calls = max(calls_per_round, int(turn_ms / max(min(warm_ms), 1e-3)))
                    settle = (settle_ms, settle_calls)
                times: list[list[float]] = [[] for _ in models]
                started = time.perf_counter()
                while len(times[0]) < 5 or time.perf_counter() - started < len(models) * min_seconds:
                    for run, series in zip(runs, times):
                        series.append(_take_turn(run, calls, *settle))
                results.append(InterleavedTimes(runtime, bs, threads, times))
    return results


def compare_latency(baseline, candidate, example_inputs, *, batch_sizes=(1, 64), runtimes=RUNTIMES,
                    threads: int | None = None, warmup: int = 10, min_seconds: float = 1.0,
                    calls_per_round: int = 5, settle_ms: float = 100.0, settle_calls: int = 2,
                    turn_ms: float = 25.0) -> list[LatencyComparison]:
    """Time two models interleaved (A B A B ...) and report candidate's speed-up over baseline.

    Each round times ``calls_per_round`` calls of each model; the speed-up is the median of
    the per-round ratios, with their min and max. ONNX Runtime sessions keep ORT's default
    settings (idle threads spin for a while, as in deployment); so that one session's spinning
    threads never share the cores with the other's calls, each ORT turn starts with a pause
    (``settle_ms``) and ``settle_calls`` untimed calls, and lasts at least ``turn_ms`` so the
    pauses do not dominate the wall time (see ``_take_turn``). ``describe_speedup`` words a row.
    ``example_inputs`` takes any form, as in ``measure_latency``.

    Example:
        >>> import deepslim, torch
        >>> rows = compare_latency(deepslim.create_model("resnet8"), deepslim.create_model("lenet5"),
        ...                        torch.randn(1, 1, 28, 28), runtimes=("torch",), min_seconds=0.2)
        >>> rows[0].speedup > 0
        True
    """
    timed = interleave_latency([baseline, candidate], example_inputs, batch_sizes=batch_sizes, runtimes=runtimes,
                               threads=threads, warmup=warmup, min_seconds=min_seconds,
                               calls_per_round=calls_per_round, settle_ms=settle_ms, settle_calls=settle_calls,
                               turn_ms=turn_ms)
    return [t.compare(0, 1) for t in timed]
