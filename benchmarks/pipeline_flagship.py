"""The default recipe on the shipped flagship: the numbers behind `make demo`'s targets.

Runs `deepslim compress --pretrained fmnist-resnet --recipe recipes/prune-quantize.yaml`
into --out (resuming an interrupted run; summarising a finished one without recomputing,
so it can read the folder `make demo` wrote), then prints the stage table and checks the
targets: the recipe's `targets` as the run recorded them (prune-quantize: at most 0.5 points
of full-test accuracy lost, at least 4x lower batch-1 latency on ONNX Runtime than the fp32
baseline on ONNX Runtime). Speed-ups come from the run's one interleaved comparison, worded
as everywhere else (``describe_speedup``: spread, rounds, "no measurable change").

    .venv/bin/python benchmarks/pipeline_flagship.py --out runs/demo --json benchmarks/results/pipeline_flagship.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import markdown_table, write_json  # noqa: E402

from deepslim.cli.main import main as deepslim_main  # noqa: E402
from deepslim.pipeline.headline import check_targets, size_headline, speedups, summary_line, targets_line  # noqa: E402
from deepslim.profiling.latency import describe_speedup  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The demo's targets, for runs recorded before recipes carried them (BENCHMARKS.md).
DEMO_TARGETS = {"max_accuracy_drop": 0.5, "min_speedup_b1": 4}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "prune-quantize.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/pipeline-flagship"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    state = args.out / "state.json"
    if not (state.is_file() and json.loads(state.read_text()).get("done")):
        code = deepslim_main(["--quiet", "compress", "--pretrained", "fmnist-resnet", "--recipe", str(args.recipe),
                              "--out", str(args.out)])
        if code:
            return code
    metrics = json.loads((args.out / "metrics.json").read_text())
    if Path(metrics.get("source", "")).name != "fmnist-resnet" and metrics.get("source") != "fmnist-resnet":
        print(f"warning: {args.out} compressed {metrics.get('source')}, not fmnist-resnet", file=sys.stderr)
    base = metrics["baseline"]
    compared = metrics.get("comparison", {}).get("stages", {})
    rows = []
    for label, m in [("fp32 baseline", base)] + [(f"{s['index']}. {s['name']}", s) for s in metrics["stages"]]:
        ort, torch_lat = m["latency_ms"]["onnxruntime"], m["latency_ms"].get("torch", {})
        vs_base = compared.get(str(m.get("index")), {}).get("vs_baseline", {})
        if not vs_base and m.get("index") == metrics["final"].get("index"):  # runs before per-stage comparisons
            vs_base = metrics["final"].get("speedup_vs_baseline", {}).get("onnxruntime", {})
        speed = [describe_speedup(vs_base[bs]) if bs in vs_base else ("1x" if m is base else "not compared")
                 for bs in ("1", "64")]
        rows.append([label, f"{m['accuracy']:.2f}", f"{m['accuracy'] - base['accuracy']:+.2f}",
                     f"{m['macs'] / 1e6:.2f}", f"{m['size_bytes'] / 1e6:.3f}", f"{ort['1']:.3f}", speed[0],
                     f"{ort['64']:.2f}", speed[1],
                     f"{torch_lat['1']:.3f}" if torch_lat else "n/a", f"{m.get('seconds', '')}"])
    print(markdown_table(["stage", "test acc %", "vs fp32", "MACs (M)", "ONNX MB", "ORT b1 ms",
                          "b1 vs fp32 (interleaved)", "ORT b64 ms", "b64 vs fp32 (interleaved)", "torch b1 ms",
                          "stage s"], rows))
    final = metrics["final"]
    lost = base["accuracy"] - final["accuracy"]
    speed1, speed64 = speedups(metrics)
    results = metrics.get("targets") or check_targets(metrics, DEMO_TARGETS)
    for flag in metrics.get("flags", []):
        print(f"FLAG: {flag}")
    print(f"\n{summary_line(metrics)}")
    print(f"targets: {targets_line(results)}; total stage time "
          f"{sum(s['seconds'] for s in metrics['stages']) / 60:.1f} min; {metrics['environment']}")
    write_json(args.json, {"metrics_file": str(args.out / "metrics.json"), "accuracy_lost": lost,
                           "speedup_b1": speed1, "speedup_b64": speed64, "targets": results,
                           "size": size_headline(metrics), "metrics": metrics})
    return 0


if __name__ == "__main__":
    sys.exit(main())
