"""``deepslim.save`` / ``deepslim.load``: a model as a folder any later session can rebuild.

An artifact folder holds ``architecture.json`` (the module tree, see architecture.py),
``weights.safetensors`` (tensors only: nothing executable is ever unpickled) and
``metadata.json`` (model name and options, data set, metrics, versions). metadata.json is
written last, so its presence marks a complete artifact.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ..core import DeepslimError
from ..core.ties import tied_tensors
from . import compact
from .architecture import adopt_saved_shapes, module_to_spec, retie, spec_to_module
from .files import write_atomic, write_json_atomic

ARCHITECTURE, WEIGHTS, METADATA = "architecture.json", "weights.safetensors", "metadata.json"
FORMAT, FORMAT_VERSION = "deepslim-artifact", 1


def versions() -> dict:
    import onnxruntime

    from .. import __version__

    return {"deepslim": __version__, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version()}


def is_artifact(path: str | Path) -> bool:
    return (Path(path) / METADATA).is_file()


def _tensors_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    out, seen = {}, set()
    for key, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu")
        # safetensors refuses shared storage (tied weights); store each tensor on its own.
        if t.data_ptr() in seen and t.numel():
            t = t.clone()
        seen.add(t.data_ptr())
        out[key] = t.contiguous()
    return out


def save(model: nn.Module, path: str | Path, *, metadata: dict | None = None, overwrite: bool = False,
         allow_modules: tuple[str, ...] = ()) -> Path:
    """Save ``model`` to the folder ``path`` so ``deepslim.load(path)`` rebuilds it.

    Refuses to replace an existing artifact unless ``overwrite=True``. Models built from classes
    outside torch.nn and deepslim (e.g. defined in the user's script) need those modules named in
    ``allow_modules`` (``("__main__",)``), here and at load. Tied weights (one Parameter under several
    names) are recorded and tied again at load.

    Example:
        >>> import deepslim
        >>> model = deepslim.create_model("lenet5")
        >>> deepslim.save(model, "/tmp/lenet", overwrite=True)
        PosixPath('/tmp/lenet')
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DeepslimError(f"{path} exists and is not a folder", hint="choose another output path")
    if is_artifact(path) and not overwrite:
        raise DeepslimError(f"{path} already holds a saved model", hint="pass overwrite=True / --overwrite, or "
                            "choose another folder")
    spec = module_to_spec(model)
    ties = tied_tensors(model)
    if ties:
        spec["tied"] = ties
    tensors = _tensors_for_saving(model)
    _check_rebuildable(spec, tensors, allow_modules)
    meta = dict(metadata or {})
    meta.setdefault("model", getattr(model, "deepslim_model", {}).get("name"))
    meta.setdefault("model_kwargs", getattr(model, "deepslim_model", {}).get("kwargs", {}))
    # `deepslim eval` results and a deployed ONNX file describe the folder they were recorded in;
    # a model saved from a loaded one (pruned, quantized ...) must not inherit them.
    for key, value in (getattr(model, "deepslim_metadata", None) or {}).items():
        if key not in _FOLDER_OWNED:
            meta.setdefault(key, value)
    meta.pop("evaluations", None)
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, params=sum(t.numel() for t in model.parameters()),
                saved_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), versions=versions())
    path.mkdir(parents=True, exist_ok=True)
    if overwrite and is_artifact(path):
        (path / METADATA).unlink()  # mark incomplete while the new files go in
    write_json_atomic(path / ARCHITECTURE, spec)
    stored, extra = compact.pack(tensors)  # sparse weights as bitmask + values: the file shrinks with sparsity
    write_atomic(path / WEIGHTS, lambda p: save_file(stored, str(p), metadata={"format": FORMAT, **extra}))
    write_json_atomic(path / METADATA, _jsonable_meta(meta))
    return path


_FOLDER_OWNED = ("evaluations", "deploy")


def _jsonable_meta(meta: dict) -> dict:
    return json.loads(json.dumps(meta, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def _check_rebuildable(spec: dict, tensors: dict, allow_modules) -> None:
    """Fail at save time, not at load time, if the architecture cannot be rebuilt."""
    try:
        rebuilt = spec_to_module(spec, allow_modules)
        retie(rebuilt, spec.get("tied", {}))
    except DeepslimError as exc:
        raise DeepslimError(f"cannot save this model: {exc.message}",
                            hint=exc.hint or "deepslim.save describes models built from torch.nn and deepslim "
                                 "modules") from exc
    theirs = {k: tuple(v.shape) for k, v in tensors.items()}
    adopt_saved_shapes(rebuilt, theirs)
    mine = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if mine != theirs:
        diff = sorted(set(mine.items()) ^ set(theirs.items()))[:3]
        raise DeepslimError(f"cannot save this model: its architecture cannot be rebuilt exactly (e.g. {diff})",
                            hint="a layer keeps state its constructor arguments do not describe")


def read_metadata(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise DeepslimError(f"{path} is not a folder", hint="pass the folder written by deepslim train/save")
    meta_file = path / METADATA
    if not meta_file.is_file():
        raise DeepslimError(f"{path} is not a complete deepslim model: {METADATA} is missing",
                            hint="the save was interrupted or this is not a model folder; save or train it again")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeepslimError(f"{meta_file} is corrupt: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DeepslimError(f"{meta_file} is not deepslim model metadata")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise DeepslimError(f"{path} was saved by a newer deepslim (format {meta['format_version']})",
                            hint="upgrade deepslim")
    return meta


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise FileNotFoundError(file)
    with safe_open(str(file), framework="pt") as fh:
        metadata = fh.metadata()
        tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    return compact.unpack(tensors, metadata)


def load(path: str | Path, *, device: str | torch.device = "cpu", allow_modules: tuple[str, ...] = ()) -> nn.Module:
    """Rebuild a model saved with ``deepslim.save``, in eval mode.

    Its metadata is attached as ``model.deepslim_metadata``. Classes outside torch.nn and deepslim
    are imported only from the modules named in ``allow_modules`` (their code runs here), e.g.
    ``load(path, allow_modules=("__main__",))`` for a model class defined in the user's script.

    Example:
        >>> import deepslim
        >>> model = deepslim.load("/tmp/lenet")
    """
    path = Path(path)
    meta = read_metadata(path)
    try:
        spec = json.loads((path / ARCHITECTURE).read_text())
    except FileNotFoundError as exc:
        raise DeepslimError(f"{path} has no {ARCHITECTURE}", hint="the artifact is incomplete; save it again") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeepslimError(f"{path / ARCHITECTURE} is corrupt: {exc}") from exc
    written = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    # the writer's torch is named if an argument it knew cannot be rebuilt under this one
    model = spec_to_module(spec, allow_modules, torch_version=written.get("torch"))
    retie(model, spec.get("tied", {}))
    try:
        tensors = _read_weights(path / WEIGHTS)
    except FileNotFoundError as exc:
        raise DeepslimError(f"{path} has no {WEIGHTS}", hint="the artifact is incomplete; save it again") from exc
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as exc:
        raise DeepslimError(f"{path / WEIGHTS} is corrupt or truncated: {exc}",
                            hint="restore it from a backup or save the model again") from exc
    adopt_saved_shapes(model, {k: tuple(v.shape) for k, v in tensors.items()})
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise DeepslimError(f"the weights in {path} do not fit its architecture: {str(exc).splitlines()[1:2]}",
                            hint="the artifact's files come from different models; save it again") from exc
    model.__dict__["deepslim_model"] = {"name": meta.get("model"), "kwargs": meta.get("model_kwargs", {})}
    model.__dict__["deepslim_metadata"] = meta
    return model.to(device).eval()
