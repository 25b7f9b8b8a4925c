"""The default recipe on the shipped flagship: the numbers behind `make demo`'s targets.

Runs `deepslim compress --pretrained fmnist-resnet --recipe recipes/prune-quantize.yaml`
into --out (resuming an interrupted run; summarising a finished one without recomputing,
so it can read the folder `make demo` wrote), then prints the stage table and checks the
targets: at most 0.5 points of full-test accuracy lost, at least 4x lower batch-1 latency
on ONNX Runtime than the fp32 baseline on ONNX Runtime.

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
from deepslim.pipeline.report import speedups  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


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
    rows = []
    for label, m in [("fp32 baseline", base)] + [(f"{s['index']}. {s['name']}", s) for s in metrics["stages"]]:
        ort, torch_lat = m["latency_ms"]["onnxruntime"], m["latency_ms"].get("torch", {})
        rows.append([label, f"{m['accuracy']:.2f}", f"{m['accuracy'] - base['accuracy']:+.2f}", f"{m['macs'] / 1e6:.2f}",
                     f"{m['size_bytes'] / 1e6:.3f}", f"{ort['1']:.3f}", f"{base['latency_ms']['onnxruntime']['1'] / ort['1']:.2f}x",
                     f"{ort['64']:.2f}", f"{base['latency_ms']['onnxruntime']['64'] / ort['64']:.2f}x",
                     f"{torch_lat['1']:.3f}" if torch_lat else "n/a", f"{m.get('seconds', '')}"])
    print(markdown_table(["stage", "test acc %", "vs fp32", "MACs (M)", "ONNX MB", "ORT b1 ms", "b1 speed-up",
                          "ORT b64 ms", "b64 speed-up", "torch b1 ms", "stage s"], rows))
    final = metrics["final"]
    lost = base["accuracy"] - final["accuracy"]
    speed1, speed64 = speedups(metrics)
    interleaved = final.get("speedup_vs_baseline", {}).get("onnxruntime", {})
    if interleaved:
        print("\ninterleaved final vs baseline on onnxruntime: " + "; ".join(
            f"batch {bs}: {r['speedup']:.2f}x [{r['speedup_min']:.2f}-{r['speedup_max']:.2f}] "
            f"({r['baseline_ms']:.3f} -> {r['candidate_ms']:.3f} ms)" for bs, r in interleaved.items()))
    print(f"\naccuracy lost {lost:.2f} points (target <= 0.5: {'met' if lost <= 0.5 else 'NOT met'}); "
          f"onnxruntime batch 1 {speed1:.2f}x (target >= 4: {'met' if speed1 >= 4 else 'NOT met'}); "
          f"batch 64 {speed64:.2f}x; total stage time {sum(s['seconds'] for s in metrics['stages']) / 60:.1f} min; "
          f"{metrics['environment']}")
    write_json(args.json, {"metrics_file": str(args.out / "metrics.json"), "accuracy_lost": lost,
                           "speedup_b1": speed1, "speedup_b64": speed64, "metrics": metrics})
    return 0


if __name__ == "__main__":
    sys.exit(main())
