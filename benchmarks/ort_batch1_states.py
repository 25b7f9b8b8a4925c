"""Batch-1 ONNX Runtime times of two models over time: the two levels small models flip between.

On this shared 2-vCPU machine a small model's batch-1 time on two ORT threads jumps between
two levels every few seconds (the demo's int8 model: about 0.10 and 0.17 ms), for the same
session, in any process; on one thread it stays put. This script shows it: it times short
windows (median of each) of the baseline and the candidate in turn, on two threads (free, and
with ORT's worker pinned to the second core) and on one, and prints every window plus a summary.

    .venv/bin/python benchmarks/ort_batch1_states.py runs/demo/stages/00-baseline/model.onnx runs/demo/model.onnx
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from common import environment, markdown_table, write_json  # noqa: E402
from ort_interleave_check import alone  # noqa: E402

MODES = {"2 threads": (2, False), "2 threads, worker pinned": (2, True), "1 thread": (1, False)}


def _session(path: str, threads: int, pinned: bool):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if pinned:  # ORT's one worker thread (the caller is the other) on logical processor 2 (1-based)
        options.add_session_config_entry("session.intra_op_thread_affinities", "2")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal((1, 1, 28, 28), np.float32)}
    return lambda: session.run(None, feed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline")
    parser.add_argument("candidate")
    parser.add_argument("--windows", type=int, default=20, help="rounds of windows (default 20)")
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one window (default 0.5 s)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        print("needs 2 cores", file=sys.stderr)
        return 2
    runs = {(model, mode): _session(path, *MODES[mode])
            for model, path in (("baseline", args.baseline), ("candidate", args.candidate)) for mode in MODES}
    rounds = []
    for _ in range(args.windows):
        rounds.append({f"{model} {mode}": alone(run, args.seconds) for (model, mode), run in runs.items()})
    keys = list(rounds[0])
    print(markdown_table(["round", *keys], [[str(i + 1)] + [f"{r[k]:.3f}" for k in keys] for i, r in enumerate(rounds)]))
    summary = []
    for mode in MODES:
        base = [r[f"baseline {mode}"] for r in rounds]
        cand = [r[f"candidate {mode}"] for r in rounds]
        ratios = [b / c for b, c in zip(base, cand)]
        summary.append([mode, f"{min(base):.3f}-{max(base):.3f}", f"{min(cand):.3f}-{max(cand):.3f}",
                        f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"])
    print()
    print(markdown_table(["mode", "baseline ms (min-max of windows)", "candidate ms (min-max)",
                          "ratio, median [min-max] of rounds"], summary))
    env = environment()
    print(f"\n{args.windows} rounds of {args.seconds} s windows; {json.dumps(env)}")
    write_json(args.json, {"args": vars(args) | {"json": str(args.json)}, "rounds": rounds, "environment": env})
    return 0


if __name__ == "__main__":
    sys.exit(main())
