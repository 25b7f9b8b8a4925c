"""Turn `--model NAME` or a folder argument into a model plus what is known about it.

A folder can be any output of deepslim:

- a saved model (train, save, prune, quantize, factorize, distill ...);
- a `deepslim compress` output folder OUT: its final model OUT/model, deployed as OUT/model.onnx;
- a stage folder OUT/stages/NN-name: that stage's model/ and its ONNX file.

When the deployed model is an int8 ONNX file, the PyTorch model next to it only simulates
integer arithmetic; ``deployed_onnx`` names the file that ships, and eval/profile measure it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..core import DeepslimError
from ..core.registry import near_matches
from ..export import list_pretrained, load, load_pretrained, read_metadata
from ..export.artifact import METADATA
from ..export.pretrained import pretrained_path
from ..models import create_model, list_models

INT8_FILE = "model.int8.onnx"
RUN_STATE, RUN_METRICS, STAGE_RECORD = "state.json", "metrics.json", "stage.json"


@dataclass
class ModelFolder:
    """What a folder argument points at. ``model_dir`` is the saved PyTorch model inside it.

    Example:
        >>> folder = model_folder("runs/demo")          # doctest: +SKIP
        >>> folder.kind, folder.model_dir.name, folder.deployed_onnx.name
        ('compress', 'model', 'model.onnx')
    """

    kind: str  # "model", "compress" (a compress --out folder) or "stage" (OUT/stages/NN-name)
    path: Path
    model_dir: Path
    metadata: dict
    onnx: Path | None = None  # an ONNX file written with this model (compress/stage export, or int8)
    int8: bool = False  # ``onnx`` is the int8 model that ships; the PyTorch twin only simulates it
    run_record: dict | None = None  # compress metrics.json "final", or the stage's stage.json

    @property
    def deployed_onnx(self) -> Path | None:
        return self.onnx if self.int8 else None

    @property
    def deployed_precision(self) -> str:
        """What the deployed ONNX file holds: int8, float16 (a half stage), or float32 when nothing is deployed."""
        if not self.int8:
            return "float32"
        return (self.metadata.get("deploy") or {}).get("precision", "int8")  # written before precision was recorded

    @property
    def data_name(self) -> str | None:
        return self.metadata.get("dataset", {}).get("name")

    def load(self, device: str | torch.device = "cpu") -> nn.Module:
        return load(self.model_dir, device=device)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeepslimError(f"{path} is corrupt: {exc}", hint="rerun the command that wrote it") from exc
    return data if isinstance(data, dict) else {}


def _is_run(path: Path) -> bool:
    return (path / RUN_STATE).is_file() or (path / RUN_METRICS).is_file()


def _named_deploy_file(model_dir: Path, meta: dict) -> Path | None:
    name = (meta.get("deploy") or {}).get("onnx")
    if not name:
        return None
    file = model_dir / name
    if not file.is_file():
        raise DeepslimError(f"{model_dir} names {name} as its deployed model, but the file is missing",
                            hint="restore the file, or quantize the model again")
    return file


def model_folder(path: str | Path) -> ModelFolder:
    """Recognise a saved model, a compress output folder or one of its stage folders."""
    path = Path(path)
    if not path.is_dir():
        raise DeepslimError(f"{path} is not a folder", hint="pass the folder written by deepslim train/save/compress")
    if (path / METADATA).is_file():
        return _saved_model(path)
    if _is_run(path):
        return _compress_run(path)
    if (path / STAGE_RECORD).is_file() or (path.parent.name == "stages" and _is_run(path.parent.parent)):
        return _stage(path)
    return _saved_model(path)  # read_metadata explains what is missing


def _saved_model(path: Path) -> ModelFolder:
    meta = read_metadata(path)
    named = _named_deploy_file(path, meta)
    if named is not None:
        return ModelFolder("model", path, path, meta, named, True)
    # OUT/model or OUT/stages/NN/model of a run that keeps the int8 file beside the folder, not in it.
    parent = path.parent
    if path.name == "model" and (parent / INT8_FILE).is_file():
        return ModelFolder("model", path, path, meta, parent / INT8_FILE, True)
    final = _read_json(parent / RUN_METRICS).get("final") or {} if path.name == "model" and _is_run(parent) else {}
    if final.get("int8") or final.get("precision", "float32") != "float32":  # the run's model.onnx is what ships
        return ModelFolder("model", path, path, meta, parent / "model.onnx", True)
    exported = path / "model.onnx"  # written by `deepslim export DIR --onnx`: float, run only when asked for
    return ModelFolder("model", path, path, meta, exported if exported.is_file() else None)


def _compress_run(path: Path) -> ModelFolder:
    state = _read_json(path / RUN_STATE)
    if not (path / "model" / METADATA).is_file() or state.get("done") is False:
        done = len(state.get("finished", []))
        raise DeepslimError(f"{path} is an unfinished compress run ({done} stage{'s' if done != 1 else ''} "
                            "finished)",
                            hint="rerun the same `deepslim compress` command to finish it, or pass one of its "
                                 f"stage folders, e.g. {path / 'stages'}/01-NAME")
    meta = read_metadata(path / "model")
    final = _read_json(path / RUN_METRICS).get("final") or None
    int8 = bool(meta.get("deploy")) or bool(final and final.get("int8"))
    onnx = path / "model.onnx"
    if not onnx.is_file():
        onnx = _named_deploy_file(path / "model", meta)
    return ModelFolder("compress", path, path / "model", meta, onnx, int8 and onnx is not None, final)


def _stage(path: Path) -> ModelFolder:
    if path.name.endswith(".partial"):
        raise DeepslimError(f"{path} is an unfinished stage (the run was interrupted during it)",
                            hint="rerun the same `deepslim compress` command to finish the run")
    if not (path / "model" / METADATA).is_file():
        source = _read_json(path.parent.parent / RUN_METRICS).get("source")
        raise DeepslimError(f"{path} holds no saved model (a run made by an older deepslim keeps only the baseline's ONNX export)",
                            hint=f"use the source model{f' {source}' if source else ''} instead")
    meta = read_metadata(path / "model")
    record = _read_json(path / STAGE_RECORD) or None
    if record is None and path.name == "00-baseline":  # the baseline's measurements live in metrics.json
        record = _read_json(path.parent.parent / RUN_METRICS).get("baseline")
    named = _named_deploy_file(path / "model", meta)
    int8_file = named or (path / INT8_FILE if (path / INT8_FILE).is_file() else None)
    if int8_file is not None:
        return ModelFolder("stage", path, path / "model", meta, int8_file, True, record)
    onnx = path / "model.onnx"
    return ModelFolder("stage", path, path / "model", meta, onnx if onnx.is_file() else None, False, record)


@dataclass
class ResolvedModel:
    model: nn.Module
    label: str
    artifact_dir: Path | None
    input_shape: tuple | None
    folder: ModelFolder | None = field(default=None)  # set when the model came from a folder

    @property
    def deployed_onnx(self) -> Path | None:
        return self.folder.deployed_onnx if self.folder else None

    @property
    def deployed_precision(self) -> str:
        return self.folder.deployed_precision if self.folder else "float32"


def resolve_model(name: str | None, directory: Path | None, model_kwargs: dict | None = None) -> ResolvedModel:
    """A shipped baseline or zoo model by name, or any model folder (see ``model_folder``)."""
    if (name is None) == (directory is None):
        raise DeepslimError("give either a saved model folder or --model NAME", hint="e.g. --model fmnist-resnet")
    if model_kwargs and (directory is not None or name in list_pretrained()):
        # Options only act when a zoo model is built; a saved or shipped model keeps its architecture.
        raise DeepslimError(f"--model-arg has no effect on {directory or name}: it is a trained model",
                            hint="drop --model-arg, or give a zoo model name with --model")
    if directory is not None:
        if not Path(directory).exists() and str(directory) in set(list_pretrained()) | set(list_models()):
            raise DeepslimError(f"{directory} is not a folder, but it is a model name", hint=f"use --model {directory}")
        folder = model_folder(directory)
        model = folder.load()
        shape = model.deepslim_metadata.get("input_shape")
        return ResolvedModel(model, str(directory), folder.model_dir, tuple(shape) if shape else None, folder)
    if name in list_pretrained():
        model = load_pretrained(name)
        shape = model.deepslim_metadata.get("input_shape")
        return ResolvedModel(model, name, pretrained_path(name), tuple(shape) if shape else None)
    if name in list_models():
        kwargs = dict(model_kwargs or {})
        model = create_model(name, **kwargs)
        return ResolvedModel(model, name, None, (1, kwargs.get("in_channels", 1), 28, 28))
    choices = sorted(set(list_pretrained()) | set(list_models()))
    close = near_matches(name, choices)
    hint = (f"did you mean {', '.join(repr(c) for c in close)}? " if close else "") + f"valid: {', '.join(choices)}"
    raise DeepslimError(f"unknown model '{name}' (neither a shipped baseline nor a zoo model)", hint=hint)


def recorded_accuracy(folder: ModelFolder) -> tuple[float, str] | None:
    """The test accuracy of what ``folder`` deploys, as recorded by the command that wrote it or by
    `deepslim eval`, with where it came from; None when nothing trustworthy is recorded.

    For an int8 folder only the int8 ONNX model's accuracy counts: the PyTorch twin's differs.
    """
    if folder.run_record and folder.run_record.get("accuracy") is not None:
        return float(folder.run_record["accuracy"]), f"{folder.kind} record"
    evaluations = {k: v for k, v in (folder.metadata.get("evaluations") or {}).items()
                   if folder.data_name in (None, v.get("data")) and v.get("accuracy") is not None}  # not retrieval
    metrics = folder.metadata.get("metrics") or {}
    if folder.int8:
        if "onnxruntime" in evaluations:
            return float(evaluations["onnxruntime"]["accuracy"]), "deepslim eval (onnxruntime)"
        if str(metrics.get("runtime", "")).startswith("onnxruntime") and metrics.get("test_accuracy") is not None:
            return float(metrics["test_accuracy"]), f"metadata ({metrics['runtime']})"
        return None
    if metrics.get("test_accuracy") is not None:
        return float(metrics["test_accuracy"]), "metadata"
    if "pytorch" in evaluations:
        return float(evaluations["pytorch"]["accuracy"]), "deepslim eval (pytorch)"
    return None


def add_model_source_args(parser: argparse.ArgumentParser) -> None:
    """DIR (a saved model) or --model NAME (a shipped baseline or zoo model) with --model-arg options."""
    parser.add_argument("model_dir", nargs="?", type=Path, metavar="DIR",
                        help="saved model folder, a `deepslim compress` --out folder, or one of its stages/NN-name")
    parser.add_argument("--model", help="shipped baseline (e.g. fmnist-resnet) or zoo model name instead of DIR")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="zoo model option, repeatable")


def resolve_model_and_data(args):
    """What `compress` and `auto` start from: the model (DIR, --model or --pretrained), the data set it
    records (or --data; --data-dir, --subset) and a resolved --out that neither is nor holds the input.
    Returns ``(resolved, data, data_name, options, out)``."""
    from ..data import load_dataset
    from .args import parse_kwargs

    if args.pretrained and (args.model or args.model_dir):
        raise DeepslimError("give one model source: DIR, --model or --pretrained")
    resolved = resolve_model(args.pretrained or args.model, args.model_dir, parse_kwargs(args.model_arg))
    meta = getattr(resolved.model, "deepslim_metadata", None) or {}
    data_name = args.data or meta.get("dataset", {}).get("name") or meta.get("nas", {}).get("data", {}).get("name")
    if not data_name:
        raise DeepslimError(f"{resolved.label} does not record its data set", hint="pass --data NAME")
    options = {"data_dir": args.data_dir} if args.data_dir else {}
    data = load_dataset(data_name, subset=args.subset, **options)
    out = args.out.resolve()
    inputs = [Path(p).resolve() for p in (resolved.artifact_dir, resolved.folder and resolved.folder.path) if p]
    if any(out == p or out in p.parents for p in inputs):  # --overwrite would delete the input with the run
        raise DeepslimError("--out is or holds the input model's folder; the input is never overwritten",
                            hint="choose another --out")
    return resolved, data, data_name, options, out
