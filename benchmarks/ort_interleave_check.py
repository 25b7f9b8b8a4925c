"""How two ONNX Runtime sessions timed in turns disturb each other, and what compare_latency does about it.

For a baseline and a candidate ONNX file: batch-1 and batch-64 median latency of each timed
alone (spinning on, ORT's default), in strict turns with spinning on, in turns with spinning
off (compare_latency's first fix, which adds thread wake-up latency to every call), with
ORT's ``session.force_spinning_stop`` (spinning within a call only), and in turns with
spinning on where each turn starts with a pause longer than ORT's spin window and 2
untimed calls (what ``deepslim.profiling.compare_latency`` does now: 100 ms).

    .venv/bin/python benchmarks/ort_interleave_check.py BASE.onnx CANDIDATE.onnx
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time

import numpy as np

from deepslim.export.onnx import onnx_session
from deepslim.profiling.latency import _take_turn


def _runner(path, batch: int, spinning: bool, stop_between_runs: bool = False, *, threads: int = 2):
    session = onnx_session(path, threads=threads, spinning=spinning, stop_spinning_between_runs=stop_between_runs)
    feed = {session.get_inputs()[0].name: np.random.randn(batch, 1, 28, 28).astype(np.float32)}
    return lambda: session.run(None, feed)


def alone(run, seconds: float) -> float:
    for _ in range(20):
        run()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def interleaved(runs, seconds: float, calls: int = 5, settle_ms: float = 0.0,
                settle_calls: int = 0) -> tuple[float, float, float]:
    for run in runs:
        for _ in range(20):
            run()
    a, b, end = [], [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        for run, acc in zip(runs, (a, b)):
            acc.append(_take_turn(run, calls, settle_ms, settle_calls))
    return statistics.median(a), statistics.median(b), statistics.median(x / y for x, y in zip(a, b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline")
    parser.add_argument("candidate")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads for both sessions, default 2")
    args = parser.parse_args()
    runner = functools.partial(_runner, threads=args.threads)
    print("| batch | mode | baseline ms | candidate ms | speed-up |\n|---|---|---|---|---|")
    for batch in (1, 64):
        base, cand = alone(runner(args.baseline, batch, True), args.seconds), alone(runner(args.candidate, batch, True), args.seconds)
        print(f"| {batch} | each alone, spinning | {base:.3f} | {cand:.3f} | {base / cand:.2f}x |")
        for spinning in (True, False):
            runs = [runner(args.baseline, batch, spinning), runner(args.candidate, batch, spinning)]
            b, c, ratio = interleaved(runs, args.seconds)
            print(f"| {batch} | interleaved, spinning {'on' if spinning else 'off'} | {b:.3f} | {c:.3f} | {ratio:.2f}x |")
        runs = [runner(args.baseline, batch, True, True), runner(args.candidate, batch, True, True)]
        b, c, ratio = interleaved(runs, args.seconds)
        print(f"| {batch} | interleaved, force_spinning_stop | {b:.3f} | {c:.3f} | {ratio:.2f}x |")
        for pause in (5, 20, 100):
            runs = [runner(args.baseline, batch, True), runner(args.candidate, batch, True)]
            b, c, ratio = interleaved(runs, args.seconds, calls=max(5, int(25 / min(base, cand))), settle_ms=pause, settle_calls=2)
            print(f"| {batch} | turns of >= 25 ms after a {pause} ms pause + 2 untimed calls, spinning on "
                  f"| {b:.3f} | {c:.3f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
