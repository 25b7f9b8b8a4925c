"""`deepslim compress`: run a recipe of compression stages; `deepslim report`: rebuild its report."""

from __future__ import annotations

import json
from pathlib import Path

from ..core import resolve_device
from ..pipeline import TECHNIQUES, compress, load_recipe
from ..pipeline.compare import RUNTIME, batch_keys
from ..pipeline.headline import summary_line, targets_line
from ..pipeline.report import write_report
from ..pipeline.runner import resume_command
from ..profiling.latency import describe_speedup
from .args import add_command, command_line, print_json
from .resolve import add_model_source_args, resolve_model_and_data


def add_parser(sub) -> None:
    techniques = "; ".join(f"{name}: {t.summary}" for name, t in TECHNIQUES.items())
    p = add_command(sub, "compress", help="run a compression recipe (stages, metrics, report)",
                    description="Run the stages of a YAML recipe on a copy of the model: after each stage the model "
                                "is evaluated on the full test split, profiled (MACs, params, size, latency on "
                                "PyTorch and ONNX Runtime) and saved under OUT/stages/. Writes OUT/model/, "
                                "OUT/model.onnx (int8 when the recipe quantizes), OUT/metrics.json and "
                                "OUT/report.html. Rerun the same command to resume an interrupted run. "
                                f"Techniques: {techniques}.")
    add_model_source_args(p)
    p.add_argument("--pretrained", metavar="NAME", help="a shipped baseline, e.g. fmnist-resnet (same as --model)")
    p.add_argument("--recipe", required=True, type=Path, help="YAML recipe, e.g. recipes/prune-quantize.yaml")
    p.add_argument("--data", help="data set name (default: the one the model was trained on)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--subset", type=int, help="fine-tune on only this many training images (text: pairs), e.g. "
                                              "for smoke runs")
    p.add_argument("--latency-seconds", type=float, default=1.0, help="time per latency measurement, default 1.0")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (training); latency is measured on CPU")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--json", action="store_true", help="print metrics.json")
    p.set_defaults(func=run)

    r = add_command(sub, "report", help="rebuild the HTML report of a compress or auto run",
                    description="Rebuild OUT/report.html from OUT/metrics.json.")
    r.add_argument("out", type=Path, metavar="OUT", help="the --out folder of `deepslim compress` or `deepslim auto`")
    r.set_defaults(func=run_report)


def run(args) -> int:
    recipe = load_recipe(args.recipe)  # validated before anything else happens
    device = resolve_device(args.device)  # so is the device: a missing GPU is refused before any work
    resolved, data, _, _, _ = resolve_model_and_data(args)
    command = command_line(args) or ""
    if command:  # Ctrl-C outside a stage (the baseline, the final timing): main prints this
        args.interrupt_hint = f"rerun `{resume_command(command)}` to resume"
    metrics = compress(resolved.model, data, recipe, args.out, device=device,
                       source=resolved.label, overwrite=args.overwrite, latency_seconds=args.latency_seconds,
                       command=command)
    if args.json:
        print_json({k: v for k, v in metrics.items()})
        return 0
    _print_table(metrics)
    _print_speedups(metrics)
    for flag in metrics.get("flags", []):
        print(f"FLAG: {flag}")
    data = metrics["data"]
    subset = f"--subset {data['subset']}" if data.get("subset") else "the whole training split"
    print(f"\n{summary_line(metrics)}")
    print(f"targets: {targets_line(metrics.get('targets', {}))}")
    print(f"data: fine-tunes on {data['train_images']:,} training {data.get('unit', 'image')}s ({subset}); {metrics.get('threads', '?')} threads; "
          f"run time {metrics.get('run_seconds', 0) / 60:.1f} min")
    print(f"report: {args.out / 'report.html'}; model: {args.out / 'model'}; deployable: {args.out / 'model.onnx'}")
    return 0


def _print_table(metrics: dict) -> None:
    """Per-model measurements, each timed on its own (ms); speed-ups come from the comparison below."""
    base = metrics["baseline"]
    large = batch_keys(metrics)[1]
    score = "R@1 %" if metrics.get("task", {}).get("metric") == "recall@1" else "acc %"
    print(f"{'stage':<34}{score:>8}{'delta':>8}{'MACs (M)':>10}{'ONNX MB':>9}{'weights MB':>11}"
          f"{'ORT b1 ms':>11}{'ORT b' + large + ' ms':>11}  kept")
    for label, m in [("baseline", base)] + [(f"{s['index']}. {s['name']}", s) for s in metrics["stages"]]:
        lat = m["latency_ms"]["onnxruntime"]
        weights = f"{m['weights_bytes'] / 1e6:.3f}" if m.get("weights_bytes") and not m.get("int8") else "-"
        kept = "" if label == "baseline" else ("yes" if m.get("kept", True) else "no: dropped (see FLAG)")
        print(f"{label:<34}{m['accuracy']:>8.2f}{m['accuracy'] - base['accuracy']:>+8.2f}{m['macs'] / 1e6:>10.2f}"
              f"{m['size_bytes'] / 1e6:>9.3f}{weights:>11}{lat['1']:>11.3f}{lat[large]:>11.2f}  {kept}")


def _print_speedups(metrics: dict) -> None:
    """Every stage against the baseline, from the run's one interleaved comparison (the headline's source)."""
    stages = metrics.get("comparison", {}).get("stages", {})
    if not stages:
        return
    print(f"\nspeed-up vs baseline on {RUNTIME}, all models timed in turns (median [min-max], rounds):")
    for s in metrics["stages"]:
        rows = stages[str(s["index"])]["vs_baseline"]
        print(f"  {s['index']}. {s['name']}: " + "; ".join(f"batch {b} {describe_speedup(rows[b])}"
                                                             for b in batch_keys(metrics)))


def run_report(args) -> int:
    metrics = args.out / "metrics.json"
    if metrics.is_file() and "finalists" in json.loads(metrics.read_text()):  # a `deepslim auto` folder
        from ..auto.report import write_auto_report

        path = write_auto_report(args.out, json.loads(metrics.read_text()))
        print(f"wrote {path}")
        return 0
    path = write_report(args.out)
    print(f"wrote {path}")
    return 0
