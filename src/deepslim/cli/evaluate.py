"""`deepslim eval`: accuracy of a saved model on the full test split, recorded in its metadata."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ..core import DeepslimError, log, resolve_device
from ..data import load_dataset
from ..export import evaluate_onnx, list_pretrained, pretrained_path, read_metadata
from ..export.artifact import METADATA
from ..export.files import write_json_atomic
from ..train import check_input_shape, evaluate
from .args import add_command, add_data_args, data_options, print_json
from .resolve import ModelFolder, model_folder


def add_parser(sub) -> None:
    p = add_command(sub, "eval", help="evaluate a saved model on the full test split",
                    description="Evaluate a model folder (written by train/save/prune/quantize, a `deepslim compress` "
                                "--out folder or one of its stages) on every image of the test split; prints e.g. "
                                "'accuracy: 93.62%'. A folder whose deployed model is an int8 (or float16) ONNX file is evaluated "
                                "as that file on ONNX Runtime. The result is recorded in the model's metadata.json "
                                "(weights untouched), where `deepslim chart` finds it.")
    p.add_argument("model_dir", type=Path, metavar="DIR",
                   help="saved model folder, a `deepslim compress` --out folder, or one of its stages/NN-name")
    add_data_args(p)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--runtime", choices=("auto", "torch", "onnxruntime"), default="auto",
                   help="auto: the deployed ONNX model when the folder has one (e.g. int8), else PyTorch")
    p.add_argument("--no-record", action="store_true", help="do not write the result into the model's metadata.json")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    folder = model_folder(args.model_dir)
    meta = folder.metadata
    stored = meta.get("dataset", {})
    name = args.data or stored.get("name")
    if not name:
        raise DeepslimError(f"{args.model_dir} does not record its data set", hint="pass --data NAME")
    options = data_options(args)
    if name == "synthetic" and name == stored.get("name"):
        options.update({k: v for k, v in stored.get("options", {}).items()
                        if k not in ("subset", "val_fraction", "seed")})
    data = load_dataset(name, **options)
    if getattr(data, "task", None) == "retrieval":
        return _run_retrieval(args, folder, data, name)
    deployed = folder.deployed_onnx
    onnx = _onnx_to_run(args, folder)
    if onnx and args.runtime != "torch":
        result = evaluate_onnx(onnx, data.test)
        runtime, label = "onnxruntime", f"{onnx.name} on onnxruntime"
        shown = f"{label}, the deployed {folder.deployed_precision} model" if deployed else label
    else:
        device = resolve_device(args.device)
        model = folder.load(device=device)
        check_input_shape(model, data.test.images[:2].to(device), expected_classes=data.num_classes)
        result = evaluate(model, data.test, device=device, desc="test")
        runtime = label = "pytorch"
        shown = f"pytorch, which only simulates the deployed {deployed.name}" if deployed else "pytorch"
    used = onnx if runtime == "onnxruntime" else deployed
    recorded = None if args.no_record else record_evaluation(folder, name, result, runtime, used)
    if args.json:
        print_json({"model_dir": str(args.model_dir), "data": name, "accuracy": result["accuracy"],
                    "loss": result["loss"], "test_images": result["n"], "runtime": label,
                    "file": str(onnx) if onnx and runtime == "onnxruntime" else None,
                    "recorded_in": str(recorded) if recorded else None})
    else:
        print(f"accuracy: {result['accuracy']:.2f}% ({result['n']} {name} test images, loss {result['loss']:.4f}, "
              f"{shown})")
    return 0


def _onnx_to_run(args, folder: ModelFolder):
    """The folder's deployed ONNX file, or (asked for with --runtime onnxruntime) its own float export."""
    onnx = folder.deployed_onnx or (folder.onnx if args.runtime == "onnxruntime" else None)
    if args.runtime == "onnxruntime" and not onnx:
        raise DeepslimError(f"{args.model_dir} has no ONNX model", hint="use --runtime torch, or write one with "
                            f"`deepslim export {args.model_dir} --onnx`")
    return onnx


def _run_retrieval(args, folder: ModelFolder, data, name: str) -> int:
    """A text retrieval data set: recall@1/@10 and MRR of every test query against every test document."""
    from ..text.evaluate import evaluate_retrieval

    onnx = _onnx_to_run(args, folder)
    use_onnx = onnx if args.runtime != "torch" else None
    model = folder.load(device="cpu" if use_onnx else resolve_device(args.device))  # its tokenizer, at least
    result = evaluate_retrieval(model, data.test, onnx=use_onnx)
    runtime = "onnxruntime" if use_onnx else "pytorch"
    label = f"{use_onnx.name} on onnxruntime" if use_onnx else "pytorch"
    recorded = None if args.no_record else record_evaluation(folder, name, result, runtime, use_onnx)
    if args.json:
        print_json({"model_dir": str(args.model_dir), "data": name, "task": "retrieval",
                    **{k: result[k] for k in ("recall@1", "recall@10", "mrr")}, "test_pairs": result["n"],
                    "runtime": label, "file": str(use_onnx) if use_onnx else None,
                    "recorded_in": str(recorded) if recorded else None})
    else:
        print(f"recall@1: {result['recall@1']:.2f}%, recall@10: {result['recall@10']:.2f}%, MRR {result['mrr']:.4f} "
              f"({result['n']:,} {name} test pairs, each query against all {result['n']:,} documents; {label})")
    return 0


def record_evaluation(folder: ModelFolder, data_name: str, result: dict, runtime: str,
                      deployed: Path | None) -> Path | None:
    """Write the result into ``folder.model_dir/metadata.json`` (atomically; the weights are not touched).

    ``evaluations[runtime]`` holds the latest result per runtime; ``metrics.test_accuracy`` is filled
    only when absent (a model saved from Python) and the data set is the model's own, so what the
    command that made the model recorded is never replaced. Returns the file written, or None.

    Example:
        >>> record_evaluation(model_folder("runs/r8"), "fashion-mnist",
        ...                   {"accuracy": 91.2, "loss": 0.25, "n": 10000}, "pytorch", None)   # doctest: +SKIP
        PosixPath('runs/r8/metadata.json')
    """
    path = folder.model_dir / METADATA
    if any(folder.model_dir.resolve() == pretrained_path(name).resolve() for name in list_pretrained()):
        return None  # a shipped baseline's metadata is part of the package, and records its accuracy already
    meta = read_metadata(folder.model_dir)  # fresh: never write back a stale copy
    retrieval = "accuracy" not in result
    scores = ({k: result[k] for k in ("recall@1", "recall@10", "mrr")} if retrieval
              else {"accuracy": result["accuracy"], "loss": result["loss"]})
    entry = {**scores, ("test_pairs" if retrieval else "test_images"): result["n"], "data": data_name,
             "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if runtime == "onnxruntime" and deployed is not None:
        entry["file"] = deployed.name
    meta["evaluations"] = {**(meta.get("evaluations") or {}), runtime: entry}
    metrics = dict(meta.get("metrics") or {})
    own_data = meta.get("dataset", {}).get("name") in (None, data_name)
    if retrieval:
        pass  # metrics.test_accuracy belongs to classification; retrieval lives in evaluations only
    elif own_data and metrics.get("test_accuracy") is None and (runtime == "onnxruntime" or deployed is None):
        metrics.update(test_accuracy=result["accuracy"], test_loss=result["loss"], test_images=result["n"],
                       runtime=f"onnxruntime {folder.deployed_precision}" if runtime == "onnxruntime" else "pytorch")
        meta["metrics"] = metrics
    try:
        write_json_atomic(path, meta)
    except OSError as exc:  # e.g. a read-only install of the shipped baselines: the result is still printed
        log(f"note: could not record the result in {path} ({exc.strerror or exc})")
        return None
    return path
