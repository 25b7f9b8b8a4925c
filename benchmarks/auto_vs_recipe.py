"""`deepslim auto`'s result against a hand-written recipe's, timed together: issue 19's acceptance.

Times the input model and every given run's deployed ONNX file in one interleaved comparison on
ONNX Runtime (batch 1 and 64 for image runs), and puts each run's test accuracy (from its
metrics.json) beside it, so "faster at no more accuracy loss" is read off one table measured in
one session. Run it on an idle machine.

    .venv/bin/python benchmarks/auto_vs_recipe.py --baseline runs/demo/stages/00-baseline/model.onnx \\
        --run recipe=runs/demo --run auto=runs/auto-flagship --json benchmarks/results/auto/flagship.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import markdown_table, write_json  # noqa: E402

from deepslim.profiling.environment import environment  # noqa: E402
from deepslim.profiling.latency import describe_speedup, interleave_latency  # noqa: E402


def _accuracy(folder: Path) -> tuple[float, float]:
    """(test accuracy, points lost) of a compress or auto run folder."""
    metrics = json.loads((folder / "metrics.json").read_text())
    if "published" in metrics:  # an auto run
        pub = metrics["published"]
        return pub["accuracy"], pub["drop"]
    return metrics["final"]["accuracy"], metrics["baseline"]["accuracy"] - metrics["final"]["accuracy"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the input model's ONNX file")
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=FOLDER",
                        help="a compress or auto --out folder (its model.onnx is timed); repeatable")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 64)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of rounds per model (default 10)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = [(label, Path(folder)) for label, folder in (r.split("=", 1) for r in args.run)]
    files = [args.baseline] + [folder / "model.onnx" for _, folder in runs]
    example = torch.zeros(1, 1, 28, 28)
    rows, record = [], {"date": datetime.date.today().isoformat(), "environment": environment(), "runs": {}}
    timed = interleave_latency(files, example, batch_sizes=tuple(args.batch or (1, 64)), runtimes=("onnxruntime",),
                               min_seconds=args.seconds)
    for i, (label, folder) in enumerate(runs, start=1):
        accuracy, drop = _accuracy(folder)
        entry = {"folder": str(folder), "accuracy": accuracy, "drop": drop, "speedup": {}}
        cells = [label, f"{accuracy:.2f}", f"{-drop:+.2f}"]
        for t in timed:
            cmp = t.compare(0, i)
            entry["speedup"][str(t.batch_size)] = cmp.to_dict()
            cells.append(f"{describe_speedup(cmp.to_dict())} ({cmp.baseline_ms:.3f} -> {cmp.candidate_ms:.3f} ms)")
        record["runs"][label] = entry
        rows.append(cells)
    print(markdown_table(["run", "test acc %", "vs input", *[f"ORT batch {t.batch_size}" for t in timed]], rows))
    if args.json:
        write_json(args.json, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
