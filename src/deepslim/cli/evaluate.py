"""`deepslim eval`: accuracy of a saved model on the full test split."""

from __future__ import annotations

from pathlib import Path

from ..core import DeepslimError, resolve_device
from ..data import load_dataset
from ..export import load, read_metadata
from ..train import check_input_shape, evaluate
from .args import add_command, add_data_args, data_options, print_json


def add_parser(sub) -> None:
    p = add_command(sub, "eval", help="evaluate a saved model on the full test split",
                       description="Evaluate a saved model (a folder written by train/save) on every image of "
                                   "the test split; prints e.g. 'accuracy: 93.62%'.")
    p.add_argument("model_dir", type=Path, metavar="DIR", help="saved model folder")
    add_data_args(p)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    meta = read_metadata(args.model_dir)
    stored = meta.get("dataset", {})
    name = args.data or stored.get("name")
    if not name:
        raise DeepslimError(f"{args.model_dir} does not record its data set", hint="pass --data NAME")
    options = data_options(args)
    if name == "synthetic" and name == stored.get("name"):
        options.update({k: v for k, v in stored.get("options", {}).items()
                        if k not in ("subset", "val_fraction", "seed")})
    data = load_dataset(name, **options)
    device = resolve_device(args.device)
    model = load(args.model_dir, device=device)
    check_input_shape(model, data.test.images[:2].to(device), expected_classes=data.num_classes)
    result = evaluate(model, data.test, device=device, desc="test")
    if args.json:
        print_json({"model_dir": str(args.model_dir), "data": name, "accuracy": result["accuracy"],
                    "loss": result["loss"], "test_images": result["n"]})
    else:
        print(f"accuracy: {result['accuracy']:.2f}% ({result['n']} {name} test images, loss {result['loss']:.4f})")
    return 0
