"""`deepslim quantize`: int8 (PTQ or QAT) that runs on ONNX Runtime's integer kernels, or binary/ternary weights."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

from ..core import DeepslimError, log, resolve_device
from ..data import load_dataset
from ..export import evaluate_onnx, save
from ..quantize import LowBitConfig, PTQConfig, export_int8, freeze_lowbit_, lowbit_, prepare_qat, quantize_, strip_qat
from ..quantize.qat import qat_export_config
from ..train import TrainConfig, Trainer, evaluate
from .args import add_command, check_output_dir, data_options, derived_metadata, print_json
from .recovery import add_distill_args, recovery_callbacks, teacher_copy
from .resolve import add_model_source_args, resolve_model

INT8_FILE = "model.int8.onnx"
METHODS = ("ptq", "qat", "binary", "ternary")


def add_parser(sub) -> None:
    p = add_command(sub, "quantize", help="quantize a saved model (int8 PTQ/QAT, binary, ternary)",
                    description="ptq: post-training static int8 (BN folded, per-channel int8 weights, uint8 activations "
                                "calibrated on training images). qat: the same after quantization-aware training with "
                                f"learned step sizes. Both write {INT8_FILE}, run by ONNX Runtime's integer kernels, which "
                                "`deepslim eval` evaluates; with --bits below 8 the result is a fake-quantized PyTorch "
                                "model only. binary/ternary: weights trained to 1 or 2 bits and stored bit-packed.")
    add_model_source_args(p)
    p.add_argument("--method", choices=METHODS, default="ptq", help="default ptq")
    p.add_argument("--bits", type=int, default=8, help="weight bit-width for ptq/qat (1-8), default 8")
    p.add_argument("--observer", default="percentile", help="minmax, percentile, mse or entropy (default percentile)")
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument("--calib", type=int, default=512, help="calibration images from the training split, default 512")
    p.add_argument("--keep-float", default="", help="comma-separated layer names to leave in float (ptq/qat)")
    p.add_argument("--equalize", action="store_true", help="cross-layer equalization before quantizing")
    p.add_argument("--bias-correction", action="store_true", help="empirical bias correction")
    p.add_argument("--epochs", type=int, default=None, help="training epochs for qat (default 2) and binary/ternary (5)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (qat: SGD 0.005; binary/ternary: AdamW 0.001)")
    p.add_argument("--binary-activations", action="store_true", help="binary: also binarize layer inputs")
    add_distill_args(p)
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--device", default="auto", help="training device for qat/binary/ternary")
    p.add_argument("--out", required=True, type=Path, help="folder for the quantized model")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)




def run(args) -> int:
    keep = [n.strip() for n in args.keep_float.split(",") if n.strip()]
    config = PTQConfig(observer=args.observer, percentile=args.percentile, calibration_size=args.calib, keep_float=keep,
                       equalize=args.equalize, bias_correction=args.bias_correction)
    if not 1 <= args.bits <= 8:
        raise DeepslimError(f"--bits {args.bits} is outside 1-8", hint="use 8 for int8 ONNX, 2-4 for fake-quant studies")
    resolved = resolve_model(args.model, args.model_dir)
    check_output_dir(args.out, resolved.artifact_dir, args.overwrite)
    meta = dict(resolved.model.deepslim_metadata or {})
    data_name = meta.get("dataset", {}).get("name")
    if not data_name:
        raise DeepslimError(f"{resolved.label} does not record its data set")
    data = load_dataset(data_name, **data_options(args))
    model = resolved.model.cpu().eval()
    float_acc = evaluate(model, data.test, desc="test (float)")["accuracy"]
    calibration = data.train.images[: args.calib]
    if args.out.exists() and args.overwrite:
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    method = {"ptq": _ptq, "qat": _qat, "binary": _lowbit, "ternary": _lowbit}[args.method]
    twin, summary, deploy = method(args, model, config, data, calibration)
    summary = {"method": args.method, "bits": args.bits if args.method in ("ptq", "qat") else None,
               "float_accuracy": float_acc, **summary}
    if deploy:
        final = evaluate_onnx(args.out / INT8_FILE, data.test)
        summary["int8_onnx_accuracy"] = final["accuracy"]
        runtime = "onnxruntime int8"
    else:
        final = evaluate(twin, data.test, desc="test (quantized)")
        runtime = "pytorch (simulated)"
    summary["accuracy"] = final["accuracy"]
    new_meta = derived_metadata(meta, final, "quantization",
                                {**summary, "config": config.to_dict(), "source": resolved.label})
    new_meta["metrics"]["runtime"] = runtime
    if deploy:
        new_meta["deploy"] = {"onnx": INT8_FILE, "runtime": "onnxruntime"}
    save(twin.cpu(), args.out, metadata=new_meta)
    if args.json:
        print_json({"out": str(args.out), **summary})
        return 0
    print(f"{args.method}: full-test accuracy float {float_acc:.2f}% -> {final['accuracy']:.2f}% ({runtime})")
    print(f"saved to {args.out}" + (f" ({INT8_FILE} runs on ONNX Runtime's integer kernels)" if deploy else ""))
    return 0


def _ptq(args, model, config, data, calibration):
    twin = quantize_(model, config, calibration, weight_bits=args.bits)
    summary = {"fake_quant_accuracy": evaluate(twin, data.test, desc="test (fake-quant)")["accuracy"]}
    if args.bits != 8:
        log(f"{args.bits}-bit weights: ONNX Runtime has no integer conv kernels for them; the model is simulated in PyTorch")
        return twin, summary, False
    info = export_int8(model, calibration, args.out / INT8_FILE, config)
    summary.update(kept_float=info["kept_float"], left_float=info["left_float"],
                   quantized_layers=len(info["quantized_nodes"]))
    return twin, summary, True


def _qat(args, model, config, data, calibration):
    teacher = teacher_copy(args, model)
    qat = prepare_qat(model, calibration, weight_bits=args.bits, config=config)
    cfg = TrainConfig(epochs=args.epochs or 2, lr=args.lr or 0.005, schedule="cosine", weight_decay=0.0)
    callbacks = recovery_callbacks(args, teacher, qat, data, resolve_device(args.device))
    Trainer(qat, cfg, callbacks=callbacks, device=args.device).fit(data.train, val_data=data.val)
    qat = qat.cpu().eval()
    summary = {"fake_quant_accuracy": evaluate(qat, data.test, desc="test (QAT fake-quant)")["accuracy"],
               "qat_epochs": cfg.epochs, "distilled": teacher is not None}
    if args.bits != 8:
        return qat, summary, False
    export_int8(strip_qat(qat), calibration, args.out / INT8_FILE, qat_export_config(config))
    return qat, summary, True


def _lowbit(args, model, config, data, calibration):
    teacher = teacher_copy(args, model)
    twin = copy.deepcopy(model)
    wrapped = lowbit_(twin, LowBitConfig(mode=args.method, binary_activations=args.binary_activations))
    cfg = TrainConfig(epochs=args.epochs or 5, optimizer="adamw", lr=args.lr or 1e-3, weight_decay=0.0)
    callbacks = recovery_callbacks(args, teacher, twin, data, resolve_device(args.device))
    Trainer(twin, cfg, callbacks=callbacks, device=args.device).fit(data.train, val_data=data.val)
    freeze_lowbit_(twin)
    return twin.cpu().eval(), {"low_bit_layers": wrapped, "epochs": cfg.epochs, "distilled": teacher is not None}, False
