"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
from pathlib import Path
from typing import Callable

from ..core import DeepslimError
from ..core.text import plural


def parse_value(text: str):
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, '32,64' -> (32, 64), anything else -> the string."""
    if "," in text:
        return tuple(parse_value(part) for part in text.split(",") if part != "")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_kwargs(items: list[str] | None) -> dict:
    """``["widths=32,64", "dropout=0.1"]`` -> ``{"widths": (32, 64), "dropout": 0.1}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DeepslimError(f"--model-arg '{item}' is not KEY=VALUE", hint="e.g. --model-arg widths=32,64,128")
        out[key.strip().replace("-", "_")] = parse_value(value.strip())
    return out


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,1,28,28' -> (1, 1, 28, 28)."""
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError as exc:
        raise DeepslimError(f"--input-shape '{text}' is not a list of integers", hint="e.g. --input-shape 1,1,28,28") from exc
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise DeepslimError(f"--input-shape '{text}' must be positive integers: batch,channels,...",
                            hint="e.g. --input-shape 1,1,28,28")
    return shape


def add_data_args(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument("--data", required=required, metavar="NAME",
                        help="data set name (see `deepslim zoo`)" + ("" if required else "; default: the one the model was trained on"))
    parser.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files "
                        "(Fashion-MNIST default: /usr/share/datasets/fashion-mnist)")


def data_options(args) -> dict:
    return {"data_dir": args.data_dir} if getattr(args, "data_dir", None) else {}


def print_json(data) -> None:
    print(json.dumps(data, indent=2))


def add_command(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A sub-command parser that also accepts the global --quiet/--traceback after the command name."""
    parser = sub.add_parser(name, **kwargs)
    parser.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or status lines")
    parser.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    return parser


def check_output_dir(out: Path, source: Path | None, overwrite: bool) -> None:
    """Refuse an --out that is the input model's folder, or that holds anything but a deepslim
    model we were told to overwrite. Nothing is deleted here: callers replace it only once the
    new model is ready."""
    from ..export import is_artifact

    if source is not None and out.resolve() == Path(source).resolve():
        raise DeepslimError("--out is the input model's folder", hint="write the new model somewhere else")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise DeepslimError(f"--out {out} is not empty", hint="use --overwrite or choose another folder")
        if not out.is_dir() or not is_artifact(out):
            raise DeepslimError(f"--out {out} holds files that are not a deepslim model; refusing to replace them")


_SAVE_OWNED = ("format", "format_version", "params", "saved_at", "versions")


def derived_metadata(source_meta: dict, evaluation: dict, key: str, summary: dict) -> dict:
    """Metadata for a model derived from another: the source's (minus what ``save`` rewrites),
    the new test metrics, and ``summary`` of what was done under ``key``."""
    # "deploy" names a file in the source's folder (its int8 ONNX), which the new folder does not hold.
    meta = {k: v for k, v in source_meta.items() if k not in _SAVE_OWNED and k not in ("deploy", "evaluations")}
    meta["metrics"] = {"test_accuracy": evaluation["accuracy"], "test_loss": evaluation["loss"],
                       "test_images": evaluation["n"]}
    meta[key] = summary
    return meta


def add_derived_output_args(parser: argparse.ArgumentParser, what: str, *, device_default: str | None = "auto") -> None:
    """Options every command that writes a compressed copy of a model shares."""
    parser.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files "
                        "(Fashion-MNIST default: /usr/share/datasets/fashion-mnist)")
    add_subset_arg(parser)
    parser.add_argument("--device", default=device_default, help="auto (CUDA when present), cpu or cuda; default auto")
    parser.add_argument("--out", required=True, type=Path, help=f"folder for the {what} (never the input's folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    parser.add_argument("--json", action="store_true", help="print JSON")


def command_line(args) -> str | None:
    """The command as the user typed it (``main`` records ``args.argv``), for metadata and model cards."""
    argv = getattr(args, "argv", None)
    return None if argv is None else "deepslim " + shlex.join(argv)


# --- data: what each step uses, said and recorded -------------------------------------------------

def add_subset_arg(parser: argparse.ArgumentParser, what: str = "fine-tuning and calibration") -> None:
    parser.add_argument("--subset", type=int, metavar="N",
                        help=f"use only N images of the training pool for {what} (the validation images are "
                             "carved from these N; the test split stays whole); default: all of them")


def data_record(data, subset: int | None) -> dict:
    """What a step trained or calibrated on, for metadata: data set, --subset and image counts."""
    return {"name": data.name, "subset": subset, "train_images": len(data.train), "val_images": len(data.val)}


def training_images(data, subset: int | None, n: int | None = None) -> str:
    """'all 55,000 training images of fashion-mnist', or with --subset '1,833 training images of
    fashion-mnist (--subset 2,000)'; ``n`` counts only the first n (calibration batches)."""
    total = len(data.train)
    used = total if n is None else min(n, total)
    if subset is None and used == total:
        return f"all {plural(total, 'training image')} of {data.name}"
    scope = f"the first {plural(used, 'training image')}" if used < total else plural(used, "training image")
    return f"{scope} of {data.name}" + (f" (--subset {subset:,})" if subset is not None else "")


def describe_data(data, subset: int | None, uses: str) -> str:
    """The status line that says which images a command trains, calibrates and judges on."""
    carved = " carved from the same subset" if subset is not None else ""
    return (f"data: {training_images(data, subset)} for {uses}, {plural(len(data.val), 'validation image')}{carved}, "
            f"all {plural(len(data.test), 'test image')} for accuracy")


def replace_output_dir(out: Path, build: Callable[[Path], None]) -> None:
    """Build the new model in a hidden folder beside ``out``, then swap it in: an error or Ctrl-C
    leaves ``out`` as it was (call ``check_output_dir`` first: it vets what may be replaced)."""
    work = out.parent / f".{out.name}.partial"
    if work.exists():
        shutil.rmtree(work)  # left by a run killed outright
    work.mkdir(parents=True)
    try:
        build(work)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9}


def amount(text: str) -> float:
    """'5e6', '5M', '250k' -> a float."""
    t = text.strip().lower()
    scale = _SUFFIX.get(t[-1:], 1.0) if t else 1.0
    try:
        value = float(t[:-1] if scale != 1.0 else t) * scale
    except ValueError as exc:
        raise ValueError(text) from exc
    if not math.isfinite(value):
        raise ValueError(text)  # 'nan' and 'inf' parse as floats but limit nothing
    return value


amount.__name__ = "number"  # argparse's message: "invalid number value: '5Q'"
