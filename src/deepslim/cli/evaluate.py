"""`deepslim eval`: accuracy of a saved model on the full test split."""

from __future__ import annotations

from pathlib import Path

from ..core import DeepslimError, resolve_device
from ..data import load_dataset
from ..export import evaluate_onnx, load, read_metadata
from ..train import check_input_shape, evaluate
from .args import add_command, add_data_args, data_options, print_json


def add_parser(sub) -> None:
    p = add_command(sub, "eval", help="evaluate a saved model on the full test split",
                       description="Evaluate a saved model (a folder written by train/save) on every image of "
                                   "the test split; prints e.g. 'accuracy: 93.62%'.")
    p.add_argument("model_dir", type=Path, metavar="DIR", help="saved model folder")
    add_data_args(p)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--runtime", choices=("auto", "torch", "onnxruntime"), default="auto",
                   help="auto: the deployed ONNX model when the folder has one (e.g. int8), else PyTorch")
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
    deployed = meta.get("deploy", {}).get("onnx")
    if args.runtime == "onnxruntime" and not deployed:
        raise DeepslimError(f"{args.model_dir} has no deployed ONNX model", hint="use --runtime torch")
    if deployed and args.runtime != "torch":
        result = evaluate_onnx(args.model_dir / deployed, data.test)
        return _report(args, name, result, f"{deployed} on onnxruntime")
    device = resolve_device(args.device)
    model = load(args.model_dir, device=device)
    check_input_shape(model, data.test.images[:2].to(device), expected_classes=data.num_classes)
    result = evaluate(model, data.test, device=device, desc="test")
    return _report(args, name, result, "pytorch")


def _report(args, name: str, result: dict, runtime: str) -> int:
    if args.json:
        print_json({"model_dir": str(args.model_dir), "data": name, "accuracy": result["accuracy"],
                    "loss": result["loss"], "test_images": result["n"], "runtime": runtime})
    else:
        print(f"accuracy: {result['accuracy']:.2f}% ({result['n']} {name} test images, loss {result['loss']:.4f}, "
              f"{runtime})")
    return 0
