"""`deepslim chart`: accuracy vs MACs of trained models (the shipped baselines and any given folders)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core import DeepslimError
from ..export import load_pretrained
from ..export.pretrained import shipped_baselines
from ..profiling import profile
from ..profiling.chart import accuracy_vs_macs_chart
from .args import add_command, print_json
from .resolve import model_folder, recorded_accuracy


def add_parser(sub) -> None:
    p = add_command(sub, "chart", help="accuracy-vs-MACs chart of trained models",
                    description="Plot test accuracy against MACs per image for the shipped baselines and any model "
                                "folders given (saved models, `deepslim compress` --out folders and their stages), "
                                "bubble area proportional to parameters, as a PNG. The accuracy is the deployed "
                                "model's: for an int8 folder the int8 ONNX file's, as recorded by the command that "
                                "made it or by `deepslim eval`.")
    p.add_argument("model_dirs", nargs="*", type=Path, metavar="DIR",
                   help="more model folders to include (saved models, compress --out folders, stages/NN-name)")
    p.add_argument("--out", type=Path, default=Path("zoo-chart.png"), help="PNG to write, default zoo-chart.png")
    p.add_argument("--no-pretrained", action="store_true", help="leave out the shipped baselines")
    p.add_argument("--json", action="store_true", help="print the plotted points as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    points = [] if args.no_pretrained else [_pretrained_point(name) for name in shipped_baselines()]
    points += [_folder_point(d) for d in args.model_dirs]
    if not points:
        raise DeepslimError("no trained models to plot", hint="pass saved model folders")
    accuracy_vs_macs_chart(points, args.out)
    if args.json:
        print_json({"out": str(args.out), "points": points})
    else:
        for p in points:
            print(f"{p['name']:<30} {p['accuracy']:6.2f}%  {p['macs'] / 1e6:8.2f}M MACs  {p['params']:>10,} params"
                  f"  ({p['accuracy_from']})")
        print(f"wrote {args.out}")
    return 0


def _counts(model) -> tuple[int, int]:
    shape = tuple(model.deepslim_metadata.get("input_shape") or (1, 1, 28, 28))
    p = profile(model, torch.randn(*shape))
    return p.macs, p.params


def _pretrained_point(name: str) -> dict:
    model = load_pretrained(name)
    accuracy = model.deepslim_metadata.get("metrics", {}).get("test_accuracy")
    if accuracy is None:
        raise DeepslimError(f"{name} records no test accuracy", hint="reinstall deepslim")
    macs, params = _counts(model)
    return {"name": name, "accuracy": accuracy, "macs": macs, "params": params, "accuracy_from": "metadata"}


def _folder_point(directory: Path) -> dict:
    folder = model_folder(directory)
    recorded = recorded_accuracy(folder)
    if recorded is None:
        what = f" of its deployed {folder.deployed_onnx.name}" if folder.int8 else ""
        raise DeepslimError(f"{directory} records no test accuracy{what}",
                            hint=f"run `deepslim eval {directory}` first")
    record = folder.run_record or {}
    if record.get("macs") is not None and record.get("params") is not None:
        macs, params = record["macs"], record["params"]  # what the compress run measured (int8: the MACs kept)
    else:
        macs, params = _counts(folder.load())
    return {"name": str(directory), "accuracy": recorded[0], "macs": macs, "params": params,
            "accuracy_from": recorded[1]}
