"""Where an ONNX model's time goes on ONNX Runtime, node by node (its built-in profiler).

At batch 1 a small int8 model's time is mostly per-node overhead; this shows which nodes (and so which
blocks of the network) the time is spent in, averaged over many calls. Used for issue 19: the flagship
int8 model's first-stage block is the one block whose removal keeps the shapes (block dropping).

    .venv/bin/python benchmarks/ort_node_profile.py runs/demo/model.onnx --threads 1 --calls 3000 \\
        --json benchmarks/results/ort_node_profile_demo.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))

from common import environment, markdown_table, write_json  # noqa: E402

SUFFIX = "_kernel_time"


def node_times(path: Path, *, threads: int, calls: int, batch: int) -> tuple[dict, float]:
    """(median microseconds by node "name op", median microseconds per run) over ``calls`` runs."""
    options = ort.SessionOptions()
    options.enable_profiling, options.intra_op_num_threads = True, threads
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {}
        for i in session.get_inputs():
            shape = [batch if not isinstance(d, int) else d for d in i.shape]
            feed[i.name] = np.zeros(shape, np.float32 if "float" in i.type else np.int64)
        for _ in range(calls):  # the first calls (warm-up) are in the average: negligible over thousands
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    # medians, not means: one call preempted by another process would otherwise weigh like hundreds
    durations: dict[str, list] = collections.defaultdict(list)
    runs = [e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith(SUFFIX):
            durations[f"{e['name'][:-len(SUFFIX)]} {e['args']['op_name']}"].append(e["dur"])
    return {k: float(np.median(v)) for k, v in durations.items()}, float(np.median(runs)) if runs else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1: steady)")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    times, wall = node_times(args.model, threads=args.threads, calls=args.calls, batch=args.batch)
    total = sum(times.values())
    rows = [[name, f"{us:.2f}", f"{100 * us / total:.1f}%"] for name, us in sorted(times.items(), key=lambda kv: -kv[1])]
    print(markdown_table(["node (op)", "median us", "share"], rows))
    print(f"\n{len(times)} nodes, {total:.1f} us in nodes (sum of medians), {wall:.1f} us median per run "
          f"({args.threads} thread(s), batch {args.batch})")
    write_json(args.json, {"model": str(args.model), "threads": args.threads, "batch": args.batch, "calls": args.calls,
                           "nodes": times, "node_total_us": total, "run_median_us": wall, "environment": environment()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
