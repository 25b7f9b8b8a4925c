"""`deepslim quantize`: int8 (PTQ or QAT) that runs on ONNX Runtime's integer kernels, or binary/ternary weights."""

from __future__ import annotations

import copy

from ..core import DeepslimError, log, resolve_device
from ..core.text import plural
from ..data import load_dataset
from ..export import evaluate_onnx, save
from ..export.model_card import write_model_card
from ..quantize import (
    LowBitConfig,
    PTQConfig,
    adaround_model,
    export_int8,
    freeze_lowbit_,
    lowbit_,
    prepare_qat,
    quantize_,
    strip_qat,
)
from ..quantize.observers import OBSERVERS
from ..quantize.qat import qat_export_config
from ..train import TrainConfig, Trainer, evaluate
from .args import (
    add_command,
    add_derived_output_args,
    check_output_dir,
    command_line,
    data_options,
    data_record,
    derived_metadata,
    describe_data,
    print_json,
    replace_output_dir,
    training_images,
)
from .options import add_alias, check_count, fill_defaults, given, refuse_inapplicable, refuse_model_args, refuse_unless
from .recovery import add_distill_args, check_distill_args, recovery_callbacks, teacher_copy
from .resolve import add_model_source_args, resolve_model

INT8_FILE = "model.int8.onnx"
METHODS = ("ptq", "qat", "binary", "ternary")
_INT8 = ("bits", "observer", "percentile", "calibration_images", "keep_float", "equalize", "bias_correction")
_TRAINING = ("finetune_epochs", "lr", "distill", "device")
_ROUNDING = ("rounding", "adaround_iterations")
# The options each method uses; any other of them the user gives is refused, naming what applies.
APPLIES = {"ptq": _INT8 + _ROUNDING, "qat": _INT8 + _TRAINING, "binary": _TRAINING + ("binary_activations",),
           "ternary": _TRAINING}
HINTS = {**{(d, "ptq"): "ptq does not train: use --method qat to fine-tune" for d in _TRAINING[:3]},
         ("device", "ptq"): "ptq calibrates and evaluates on the CPU; --device is for qat, binary and ternary",
         **{(d, m): "binary/ternary weights are 1 or 2 bits and have no calibrated int8 ranges; the int8 options "
                    "are for --method ptq or qat" for d in _INT8 for m in ("binary", "ternary")},
         ("binary_activations", "ternary"): "--binary-activations is for --method binary",
         **{(d, "qat"): "qat learns the weights themselves; AdaRound is a post-training method (--method ptq)"
            for d in _ROUNDING}}
# Per-method defaults: qat fine-tunes briefly with SGD; binary/ternary train longer with AdamW.
EPOCHS = {"qat": 2, "binary": 5, "ternary": 5}
LR = {"qat": 0.005, "binary": 1e-3, "ternary": 1e-3}
DEFAULTS = {"bits": 8, "observer": "percentile", "percentile": 99.99, "calibration_images": 512, "device": "auto",
            "rounding": "nearest", "adaround_iterations": 1000}


def add_parser(sub) -> None:
    p = add_command(sub, "quantize", help="quantize a saved model (int8 PTQ/QAT, binary, ternary)",
                    description="ptq: post-training static int8 (BN folded, per-channel int8 weights, uint8 activations "
                                "calibrated on training images). qat: the same after quantization-aware training with "
                                f"learned step sizes. Both write {INT8_FILE}, run by ONNX Runtime's integer kernels, which "
                                "`deepslim eval` evaluates; with --bits below 8 the result is a fake-quantized PyTorch "
                                "model only. binary/ternary: weights trained to 1 or 2 bits and stored bit-packed. "
                                "Options that do not apply to the --method are refused.")
    add_model_source_args(p)
    p.add_argument("--method", choices=METHODS, default="ptq", help="quantization method; default ptq")
    p.add_argument("--bits", type=int, help="ptq, qat: weight bit-width (1-8); default 8")
    p.add_argument("--observer", choices=OBSERVERS,
                   help="ptq, qat: how activation ranges are set from the calibration images; default percentile")
    p.add_argument("--percentile", type=float, metavar="P",
                   help="with --observer percentile: the range covers this percentile of the activations; "
                        f"default {DEFAULTS['percentile']}")
    calibration = p.add_argument("--calibration-images", type=int, metavar="N",
                                 help="ptq, qat: calibration images from the training split; default 512")
    add_alias(p, "--calib", calibration)
    p.add_argument("--keep-float", metavar="LAYERS", help="ptq, qat: comma-separated layer names to leave in float")
    p.add_argument("--equalize", action="store_true", help="ptq, qat: cross-layer equalization before quantizing")
    p.add_argument("--bias-correction", action="store_true", help="ptq, qat: empirical bias correction")
    p.add_argument("--rounding", choices=("nearest", "adaround"),
                   help="ptq: how weights are rounded onto the grid: nearest, or adaround (learned per weight, layer "
                        "by layer, on the calibration images: minutes, most useful at --bits 4); default nearest")
    p.add_argument("--adaround-iterations", type=int, metavar="N",
                   help="with --rounding adaround: optimisation steps per layer; default 1000")
    epochs = p.add_argument("--finetune-epochs", type=int, metavar="N",
                            help="qat, binary, ternary: training epochs; default 2 for qat, 5 for binary/ternary")
    add_alias(p, "--epochs", epochs)
    p.add_argument("--lr", type=float,
                   help="qat, binary, ternary: learning rate; default SGD 0.005 for qat, AdamW 0.001 for "
                        "binary/ternary")
    p.add_argument("--binary-activations", action="store_true", help="binary: also binarize layer inputs")
    add_distill_args(p)
    add_derived_output_args(p, "quantized model", device_default=None)
    p.set_defaults(func=run)


def check_args(args) -> None:
    """Refuse options that would not act, then fill the defaults of those left unset."""
    refuse_model_args(args)
    refuse_inapplicable(args, args.method, APPLIES, HINTS)
    refuse_unless(args, "percentile", args.observer in (None, "percentile"), "--observer percentile",
                  f"--observer {args.observer} does not use a percentile")
    refuse_unless(args, "adaround_iterations", args.rounding == "adaround", "--rounding adaround",
                  "add --rounding adaround, or drop --adaround-iterations")
    trains = args.method != "ptq"
    if trains:
        check_count(args, "finetune_epochs", 1)
    for dest in ("calibration_images",) + (("subset",) if given(args, "subset") else ()):
        check_count(args, dest, 1 if dest == "calibration_images" else 2)
    check_distill_args(args, trains, "--method qat, binary or ternary")
    fill_defaults(args, {**DEFAULTS, "finetune_epochs": EPOCHS.get(args.method, 0), "lr": LR.get(args.method)})
    if not 1 <= args.bits <= 8:
        raise DeepslimError(f"--bits {args.bits} is outside 1-8", hint="use 8 for int8 ONNX, 2-4 for fake-quant studies")


def run(args) -> int:
    check_args(args)
    keep = [n.strip() for n in (args.keep_float or "").split(",") if n.strip()]
    config = PTQConfig(observer=args.observer, percentile=args.percentile, calibration_size=args.calibration_images,
                       keep_float=keep, equalize=args.equalize, bias_correction=args.bias_correction,
                       **({"rounding": args.rounding, "adaround_iterations": args.adaround_iterations}
                          if args.method == "ptq" else {}))
    resolved = resolve_model(args.model, args.model_dir)
    check_output_dir(args.out, resolved.artifact_dir, args.overwrite)
    meta = dict(resolved.model.deepslim_metadata or {})
    data_name = meta.get("dataset", {}).get("name")
    if not data_name:
        raise DeepslimError(f"{resolved.label} does not record its data set")
    args.interrupt_hint = "nothing was written to --out; rerun the same command"
    data = load_dataset(data_name, subset=args.subset, **data_options(args))
    log(describe_data(data, args.subset, "calibration" if args.method == "ptq" else
                      ("calibration and training" if args.method == "qat" else "training")))
    model = resolved.model.cpu().eval()
    float_acc = evaluate(model, data.test, desc="test (float)")["accuracy"]
    calibration = data.train.images[: args.calibration_images]
    if args.method in ("ptq", "qat"):
        log(f"calibrating activation ranges ({args.observer} observer) on "
            f"{training_images(data, args.subset, args.calibration_images)}")
    method = {"ptq": _ptq, "qat": _qat, "binary": _lowbit, "ternary": _lowbit}[args.method]
    done = {}

    def build(folder):
        twin, summary, deploy = method(args, model, config, data, calibration, folder)
        summary = {"method": args.method, "bits": args.bits if args.method in ("ptq", "qat") else None,
                   "float_accuracy": float_acc, **summary}
        if deploy:
            final = evaluate_onnx(folder / INT8_FILE, data.test)
            summary["int8_onnx_accuracy"] = final["accuracy"]
            runtime = "onnxruntime int8"
        else:
            final = evaluate(twin, data.test, desc="test (quantized)")
            runtime = "pytorch (simulated)"
        summary.update(accuracy=final["accuracy"], data=data_record(data, args.subset), command=command_line(args),
                       calibration_images=len(calibration) if args.method in ("ptq", "qat") else None,
                       finetune_epochs=args.finetune_epochs if args.method != "ptq" else 0)
        new_meta = derived_metadata(meta, final, "quantization",
                                    {**summary, "config": config.to_dict(), "source": resolved.label})
        new_meta["metrics"]["runtime"] = runtime
        if deploy:
            new_meta["deploy"] = {"onnx": INT8_FILE, "runtime": "onnxruntime"}
        save(twin.cpu(), folder, metadata=new_meta)
        write_model_card(folder)
        done.update(summary=summary, final=final, runtime=runtime, deploy=deploy)

    replace_output_dir(args.out, build)
    if args.json:
        print_json({"out": str(args.out), **done["summary"]})
        return 0
    print(f"{args.method}: full-test accuracy float {float_acc:.2f}% -> {done['final']['accuracy']:.2f}% "
          f"({done['runtime']})")
    print(f"saved to {args.out}" + (f" ({INT8_FILE} runs on ONNX Runtime's integer kernels)" if done["deploy"] else ""))
    return 0


def _train_log(args, data, what: str, teacher) -> None:
    log(f"{what} for {plural(args.finetune_epochs, 'epoch')} on {training_images(data, args.subset)}"
        + (" with distillation from the input model" if teacher is not None else ""))


def _ptq(args, model, config, data, calibration, folder):
    summary = {}
    if config.rounding == "adaround":  # round once; the twin and the ONNX model both quantize the result
        model, rounding, config = adaround_model(model, config, calibration, bits=args.bits)
        summary["adaround"] = _rounding_summary(rounding)
    twin = quantize_(model, config, calibration, weight_bits=args.bits)
    summary["fake_quant_accuracy"] = evaluate(twin, data.test, desc="test (fake-quant)")["accuracy"]
    if args.bits != 8:
        log(f"{args.bits}-bit weights: ONNX Runtime has no integer conv kernels for them; the model is simulated in PyTorch")
        return twin, summary, False
    info = export_int8(model, calibration, folder / INT8_FILE, config)
    summary.update(kept_float=info["kept_float"], left_float=info["left_float"],
                   quantized_layers=len(info["quantized_nodes"]))
    return twin, summary, True


def _rounding_summary(report: dict) -> dict:
    layers = report["layers"]
    return {"layers_rounded": len(layers), "left_at_nearest": report["nearest"],
            "layers_with_lower_error": sum(r["adaround_error"] < r["nearest_error"] for r in layers.values()),
            "iterations": report["config"]["iterations"]}


def _qat(args, model, config, data, calibration, folder):
    teacher = teacher_copy(args, model)
    qat = prepare_qat(model, calibration, weight_bits=args.bits, config=config)
    cfg = TrainConfig(epochs=args.finetune_epochs, lr=args.lr, schedule="cosine", weight_decay=0.0)
    callbacks = recovery_callbacks(args, teacher, qat, data, resolve_device(args.device))
    _train_log(args, data, "quantization-aware training", teacher)
    Trainer(qat, cfg, callbacks=callbacks, device=args.device).fit(data.train, val_data=data.val)
    qat = qat.cpu().eval()
    summary = {"fake_quant_accuracy": evaluate(qat, data.test, desc="test (QAT fake-quant)")["accuracy"],
               "qat_epochs": cfg.epochs, "distilled": teacher is not None}
    if args.bits != 8:
        return qat, summary, False
    export_int8(strip_qat(qat), calibration, folder / INT8_FILE, qat_export_config(config))
    return qat, summary, True


def _lowbit(args, model, config, data, calibration, folder):
    teacher = teacher_copy(args, model)
    twin = copy.deepcopy(model)
    wrapped = lowbit_(twin, LowBitConfig(mode=args.method, binary_activations=args.binary_activations))
    cfg = TrainConfig(epochs=args.finetune_epochs, optimizer="adamw", lr=args.lr, weight_decay=0.0)
    callbacks = recovery_callbacks(args, teacher, twin, data, resolve_device(args.device))
    _train_log(args, data, f"training {args.method} weights", teacher)
    Trainer(twin, cfg, callbacks=callbacks, device=args.device).fit(data.train, val_data=data.val)
    freeze_lowbit_(twin)
    return twin.cpu().eval(), {"low_bit_layers": wrapped, "epochs": cfg.epochs, "distilled": teacher is not None}, False
