"""`deepslim chart`: accuracy vs MACs of trained models (the shipped baselines and any given folders)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core import DeepslimError
from ..export import list_pretrained, load, load_pretrained
from ..profiling import profile
from ..profiling.chart import accuracy_vs_macs_chart
from .args import add_command, print_json


def add_parser(sub) -> None:
    p = add_command(sub, "chart", help="accuracy-vs-MACs chart of trained models",
                    description="Plot test accuracy against MACs per image for the shipped baselines and any saved "
                                "model folders given, bubble area proportional to parameters, as a PNG.")
    p.add_argument("model_dirs", nargs="*", type=Path, metavar="DIR", help="more saved model folders to include")
    p.add_argument("--out", type=Path, default=Path("zoo-chart.png"), help="PNG to write, default zoo-chart.png")
    p.add_argument("--no-pretrained", action="store_true", help="leave out the shipped baselines")
    p.add_argument("--json", action="store_true", help="print the plotted points as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    models = [] if args.no_pretrained else [(name, load_pretrained(name)) for name in list_pretrained()]
    models += [(str(d), load(d)) for d in args.model_dirs]
    points = []
    for name, model in models:
        meta = model.deepslim_metadata
        accuracy = meta.get("metrics", {}).get("test_accuracy")
        if accuracy is None:
            raise DeepslimError(f"{name} records no test accuracy", hint=f"run `deepslim eval {name}` on a trained model")
        shape = tuple(meta.get("input_shape") or (1, 1, 28, 28))
        p = profile(model, torch.randn(*shape))
        points.append({"name": name, "accuracy": accuracy, "macs": p.macs, "params": p.params})
    if not points:
        raise DeepslimError("no trained models to plot", hint="pass saved model folders")
    accuracy_vs_macs_chart(points, args.out)
    if args.json:
        print_json({"out": str(args.out), "points": points})
    else:
        for p in points:
            print(f"{p['name']:<30} {p['accuracy']:6.2f}%  {p['macs'] / 1e6:8.2f}M MACs  {p['params']:>10,} params")
        print(f"wrote {args.out}")
    return 0
