"""`deepslim quantize`: an int8 model that runs on integer kernels in ONNX Runtime, plus its PyTorch twin."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..core import DeepslimError, log
from ..data import load_dataset
from ..export import evaluate_onnx, is_artifact, save
from ..quantize import PTQConfig, export_int8, quantize_
from ..train import evaluate
from .args import add_command, data_options, print_json
from .resolve import add_model_source_args, resolve_model

INT8_FILE = "model.int8.onnx"


def add_parser(sub) -> None:
    p = add_command(sub, "quantize", help="quantize a saved model to int8",
                    description="Post-training static int8: BN folded, per-channel symmetric int8 weights, uint8 "
                                "activations calibrated on training images. Writes --out with the int8 ONNX model "
                                f"({INT8_FILE}, run by ONNX Runtime's integer kernels) and a fake-quantized PyTorch "
                                "model that deepslim.load returns; `deepslim eval` evaluates the int8 ONNX model.")
    add_model_source_args(p)
    p.add_argument("--method", choices=("ptq",), default="ptq", help="ptq (QAT, binary and ternary are being built)")
    p.add_argument("--observer", default="percentile", help="minmax, percentile, mse or entropy (default percentile)")
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument("--calib", type=int, default=512, help="calibration images from the training split, default 512")
    p.add_argument("--keep-float", default="", help="comma-separated layer names to leave in float")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--out", required=True, type=Path, help="folder for the quantized model")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    keep = [n.strip() for n in args.keep_float.split(",") if n.strip()]
    config = PTQConfig(observer=args.observer, percentile=args.percentile, calibration_size=args.calib, keep_float=keep)
    resolved = resolve_model(args.model, args.model_dir)
    if resolved.artifact_dir is not None and args.out.resolve() == resolved.artifact_dir.resolve():
        raise DeepslimError("--out is the input model's folder", hint="write the quantized model somewhere else")
    if args.out.exists() and any(args.out.iterdir()) if args.out.is_dir() else args.out.exists():
        if not args.overwrite:
            raise DeepslimError(f"--out {args.out} is not empty", hint="use --overwrite or choose another folder")
        if args.out.is_dir() and not is_artifact(args.out):
            raise DeepslimError(f"--out {args.out} holds files that are not a deepslim model; refusing to replace them")
    meta = dict(resolved.model.deepslim_metadata or {})
    data_name = meta.get("dataset", {}).get("name")
    if not data_name:
        raise DeepslimError(f"{resolved.label} does not record its data set")
    data = load_dataset(data_name, **data_options(args))
    model = resolved.model.cpu().eval()
    float_acc = evaluate(model, data.test, desc="test (float)")["accuracy"]
    calibration = data.train.images[: args.calib]
    fake = quantize_(model, config, calibration)
    fake_acc = evaluate(fake, data.test, desc="test (fake-quant)")["accuracy"]
    if args.out.exists() and args.overwrite:
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    info = export_int8(model, calibration, args.out / INT8_FILE, config)
    int8 = evaluate_onnx(args.out / INT8_FILE, data.test)
    summary = {"method": args.method, "config": config.to_dict(), "float_accuracy": float_acc,
               "fake_quant_accuracy": fake_acc, "int8_onnx_accuracy": int8["accuracy"],
               "kept_float": info["kept_float"], "quantized_layers": len(info["quantized_nodes"])}
    new_meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "params", "saved_at", "versions")}
    new_meta["metrics"] = {"test_accuracy": int8["accuracy"], "test_loss": int8["loss"], "test_images": int8["n"],
                           "runtime": "onnxruntime int8"}
    new_meta["quantization"] = {**summary, "source": resolved.label}
    new_meta["deploy"] = {"onnx": INT8_FILE, "runtime": "onnxruntime"}
    save(fake, args.out, metadata=new_meta)
    if args.json:
        print_json({"out": str(args.out), **summary})
        return 0
    print(f"int8 ({config.observer} observer, {args.calib} calibration images): full-test accuracy float "
          f"{float_acc:.2f}% -> int8 ONNX {int8['accuracy']:.2f}% (fake-quant PyTorch {fake_acc:.2f}%)")
    if info["kept_float"]:
        log(f"kept in float: {', '.join(info['kept_float'])}")
    print(f"saved to {args.out} ({INT8_FILE} runs on ONNX Runtime's integer kernels)")
    return 0
