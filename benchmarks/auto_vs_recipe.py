"""`deepslim auto`'s result against a hand-written recipe's, timed together: issue 19's acceptance.

Times the input model and every given run's deployed ONNX file in one interleaved comparison on
ONNX Runtime (image runs: batch 1 and 64 on a 28x28 image; text runs, ``--text``: the compress runs' own
cases, batch 1 on the median test query and batch 32 on the longest of 32 test descriptions), and puts
each run's test score (from its metrics.json) beside it, so "faster at no more loss" is read off one
table measured in one session. Run it on an idle machine.

    .venv/bin/python benchmarks/auto_vs_recipe.py --baseline runs/demo/stages/00-baseline/model.onnx \\
        --run recipe=runs/demo --run auto=runs/auto-flagship --json benchmarks/results/auto/flagship.json
    .venv/bin/python benchmarks/auto_vs_recipe.py --text --baseline runs/minilm-search/stages/00-baseline/model.onnx \\
        --run recipe=runs/minilm-search --run auto=runs/auto-minilm --json benchmarks/results/auto/minilm.json
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


def _cases(args) -> list[tuple[int, object]]:
    """(batch, one input) pairs to time at."""
    if not args.text:
        return [(b, torch.zeros(1, 1, 28, 28)) for b in args.batch or (1, 64)]
    from deepslim.data import load_dataset
    from deepslim.export.pretrained import load_pretrained
    from deepslim.pipeline.tasks import task_for

    model = load_pretrained("minilm-l6")
    return task_for(load_dataset("debian-descriptions", subset=64), model, torch.device("cpu")).latency_cases()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the input model's ONNX file")
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=FOLDER",
                        help="a compress or auto --out folder (its model.onnx is timed); repeatable")
    parser.add_argument("--batch", type=int, action="append", help="image batch sizes (default 1 and 64)")
    parser.add_argument("--text", action="store_true",
                        help="minilm-l6 runs on debian-descriptions: time them on the retrieval task's inputs")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of rounds per model (default 10)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = [(label, Path(folder)) for label, folder in (r.split("=", 1) for r in args.run)]
    files = [args.baseline] + [folder / "model.onnx" for _, folder in runs]
    rows, record = [], {"date": datetime.date.today().isoformat(), "environment": environment(), "runs": {}}
    timed = [t for batch, inputs in _cases(args) for t in interleave_latency(
        files, inputs, batch_sizes=(batch,), runtimes=("onnxruntime",), min_seconds=args.seconds)]
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
    print(markdown_table(["run", "test score %", "vs input", *[f"ORT batch {t.batch_size}" for t in timed]], rows))
    if args.json:
        write_json(args.json, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
