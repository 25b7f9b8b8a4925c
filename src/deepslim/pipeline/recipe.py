"""Compression recipes: YAML files listing stages, validated (with line numbers) before anything runs.

A recipe::

    name: prune-quantize
    description: half the MACs by channel pruning, recover with KD, then int8
    stages:
      - technique: channel_pruning     # see TECHNIQUES
        ratio: 0.3                     # the technique's config fields, as in Python
        finetune: {epochs: 3, lr: 0.01, distill: true}
      - technique: quantize
        observer: percentile
        keep: if_faster                # ship the stage only if it is not measurably slower
    targets: {max_accuracy_drop: 0.5, min_speedup_b1: 4}   # optional; checked and reported

Everything is checked first: unknown techniques and fields (with near matches), wrong types
or ranges (the config classes' own checks), stage order (quantization must come last),
``keep`` values and ``targets`` fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core import Config, DeepslimError
from ..core.registry import near_matches
from .techniques import TECHNIQUES

FINETUNE_FIELDS = {"epochs": int, "lr": float, "batch_size": int, "distill": bool, "temperature": float,
                   "alpha": float, "seed": int}
MAX_SEED = 2**32  # the loaders derive each epoch's generator seed from it (seed * 1,000,003 + epoch): no overflow
STAGE_KEYS = {"technique", "name", "finetune", "keep"}
# keep: always ships every stage; if_faster drops a stage measurably slower than its input
# (the runner's rule, see compare.keep_decision).
KEEP_VALUES = ("always", "if_faster")
# targets: what a run promises, checked against the final model (see headline.check_targets).
TARGET_FIELDS = {"max_accuracy_drop": "points of full-test accuracy lost, at most",
                 "min_speedup_b1": "median speed-up on onnxruntime at batch 1, at least",
                 "min_speedup_b64": "median speed-up on onnxruntime at batch 64 (image runs), at least",
                 "min_speedup_b32": "median speed-up on onnxruntime at batch 32 (text retrieval runs), at least",
                 "min_smaller": "times smaller than the baseline (the headline's size), at least"}
TOP_KEYS = ("name", "description", "stages", "targets")


@dataclass
class Finetune:
    epochs: int = 0
    lr: float = 0.01
    batch_size: int = 128
    distill: bool = False
    temperature: float = 4.0
    alpha: float = 0.9
    seed: int = 0  # the fine-tune's batch order, augmentation and dropout: other seeds show the run-to-run spread


@dataclass
class Stage:
    technique: str
    name: str
    config: Config
    finetune: Finetune
    line: int
    keep: str = "always"


@dataclass
class Recipe:
    name: str
    description: str
    stages: list[Stage] = field(default_factory=list)
    source: str = ""
    targets: dict = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """Hash of the recipe text: a resumed run must use the same recipe."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


def _err(line: int | None, message: str, hint: str | None = None) -> DeepslimError:
    where = f"recipe line {line}: " if line else "recipe: "
    return DeepslimError(where + message, hint=hint)


def _lines(node) -> dict:
    """Map each mapping key (and each sequence item) of a composed YAML node tree to its line."""
    out = {"_line": node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[key.value] = _lines(value) | {"_key_line": key.start_mark.line + 1}
    elif isinstance(node, yaml.SequenceNode):
        out["_items"] = [_lines(item) for item in node.value]
    return out


def _type_ok(value, annotation) -> bool:
    """Does ``value`` (from YAML) fit a dataclass field annotation like ``float | None``?"""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    options = [t.strip() for t in text.replace("typing.", "").replace("Optional[", "").rstrip("]").split("|")]
    if value is None:
        return "None" in options or "Optional" in text
    for option in options:
        base = option.split("[")[0]
        if base == "bool" and isinstance(value, bool):
            return True
        if base == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if base == "str" and isinstance(value, str):
            return True
        if base in ("list", "tuple") and isinstance(value, list):
            return True
        if base == "dict" and isinstance(value, dict):
            return True
    return False


def _type_name(annotation) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


# YAML 1.1 (PyYAML) reads 1e6 and 1e-3 as strings: it wants 1.0e6. Read them as the numbers meant.
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _exponent_floats(fields: dict, accepts_float) -> dict:
    return {k: float(v) if isinstance(v, str) and _EXPONENT_NUMBER.fullmatch(v) and accepts_float(k) else v
            for k, v in fields.items()}


def _build_config(technique: str, fields: dict, lines: dict) -> Config:
    config_cls = TECHNIQUES[technique].config
    hints = typing.get_type_hints(config_cls)
    known = {f.name for f in dataclasses.fields(config_cls)}
    fields = _exponent_floats(fields, lambda k: k in hints and _type_ok(1.5, hints[k]))
    for key, value in fields.items():
        line = lines.get(key, {}).get("_key_line", lines["_line"])
        if key not in known:
            close = near_matches(key, known | STAGE_KEYS)
            raise _err(line, f"{technique} has no field '{key}'",
                       (f"did you mean '{close[0]}'? " if close else "") + f"fields: {', '.join(sorted(known))}")
        if not _type_ok(value, hints[key]):
            raise _err(line, f"{technique}.{key} = {value!r} has the wrong type",
                       f"expected {_type_name(hints[key])}")
    try:
        return config_cls(**{k: tuple(v) if isinstance(v, list) and "tuple" in str(hints[k]) else v
                             for k, v in fields.items()})
    except DeepslimError as exc:
        named = [k for k in fields if f".{k} " in exc.message or f".{k}[" in exc.message]
        line = lines[named[0]]["_key_line"] if named else lines["_line"]
        raise _err(line, f"stage {technique}: {exc.message}", exc.hint) from exc


def _build_finetune(data, lines: dict) -> Finetune:
    if data is None:
        return Finetune()
    if not isinstance(data, dict):
        raise _err(lines["_line"], "finetune must be a mapping", hint="e.g. finetune: {epochs: 2, lr: 0.01}")
    data = _exponent_floats(data, lambda k: FINETUNE_FIELDS.get(k) is float)
    for key, value in data.items():
        line = lines.get(key, {}).get("_key_line", lines["_line"])
        if key not in FINETUNE_FIELDS:
            close = near_matches(key, FINETUNE_FIELDS)
            raise _err(line, f"finetune has no field '{key}'",
                       (f"did you mean '{close[0]}'? " if close else "") + f"fields: {', '.join(FINETUNE_FIELDS)}")
        expected = FINETUNE_FIELDS[key]
        ok = isinstance(value, bool) if expected is bool else (
            isinstance(value, (int, float)) and not isinstance(value, bool) and (expected is float or
                                                                                 isinstance(value, int)))
        if not ok:
            raise _err(line, f"finetune.{key} = {value!r} must be {expected.__name__}")
    ft = Finetune(**data)
    if ft.epochs < 0 or ft.lr <= 0 or ft.batch_size < 1 or ft.temperature <= 0 or not 0 <= ft.alpha <= 1 \
            or not 0 <= ft.seed < MAX_SEED:
        raise _err(lines["_line"], f"finetune values out of range: {data}",
                   hint="epochs >= 0, lr > 0, batch_size >= 1, temperature > 0, 0 <= alpha <= 1, 0 <= seed < 2**32")
    return ft


def _build_keep(value, lines: dict) -> str:
    line = lines.get("keep", {}).get("_key_line", lines["_line"])
    if value not in KEEP_VALUES:
        close = near_matches(str(value), KEEP_VALUES)
        raise _err(line, f"keep: {value!r} is not a keep rule",
                   (f"did you mean '{close[0]}'? " if close else "") + f"choose {' or '.join(KEEP_VALUES)}")
    return value


def _build_targets(data, lines: dict) -> dict:
    """``targets: {max_accuracy_drop: 0.5, min_speedup_b1: 4}``: numbers >= 0, known names only."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _err(lines["_line"], "targets must be a mapping", hint="e.g. targets: {max_accuracy_drop: 0.5}")
    for key, value in data.items():
        line = lines.get(key, {}).get("_key_line", lines["_line"])
        if key not in TARGET_FIELDS:
            close = near_matches(str(key), TARGET_FIELDS)
            raise _err(line, f"targets has no field '{key}'",
                       (f"did you mean '{close[0]}'? " if close else "") + f"fields: {', '.join(TARGET_FIELDS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise _err(line, f"targets.{key} = {value!r} must be a number >= 0", hint=TARGET_FIELDS[key])
    return {k: float(v) for k, v in data.items()}


def parse_recipe(text: str, origin: str = "recipe") -> Recipe:
    """Parse and validate recipe text; raises ``DeepslimError`` naming the line of any problem.

    Example:
        >>> r = parse_recipe("stages:\\n  - technique: channel_pruning\\n    ratio: 0.3\\n")
        >>> r.stages[0].config
        ChannelPruning(ratio=0.3, importance='l2', global_ranking=False, round_to=None, per_layer={})
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise _err(mark.line + 1 if mark else None, f"{origin} is not valid YAML: "
                   f"{getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(data, dict) or node is None:
        raise _err(None, f"{origin} must be a mapping with a 'stages' list", hint="see recipes/*.yaml")
    lines = _lines(node)
    unknown = set(data) - set(TOP_KEYS)
    if unknown:
        key = sorted(unknown)[0]
        close = near_matches(str(key), TOP_KEYS)
        raise _err(lines[key]["_key_line"], f"unknown top-level key '{key}'",
                   (f"did you mean '{close[0]}'? " if close else "") + f"allowed: {', '.join(TOP_KEYS)}")
    targets = _build_targets(data.get("targets"), lines.get("targets", lines))
    stages_data = data.get("stages")
    if not isinstance(stages_data, list) or not stages_data:
        raise _err(lines.get("stages", lines)["_line"], "'stages' must be a non-empty list")
    stages = []
    for i, (item, item_lines) in enumerate(zip(stages_data, lines["stages"]["_items"])):
        if not isinstance(item, dict) or "technique" not in item:
            raise _err(item_lines["_line"], f"stage {i + 1} must be a mapping with a 'technique'",
                       hint=f"techniques: {', '.join(TECHNIQUES)}")
        technique = item["technique"]
        if technique not in TECHNIQUES:
            close = near_matches(str(technique), TECHNIQUES)
            raise _err(item_lines["technique"]["_line"], f"unknown technique '{technique}'",
                       (f"did you mean '{close[0]}'? " if close else "") + f"techniques: {', '.join(TECHNIQUES)}")
        fields = {k: v for k, v in item.items() if k not in STAGE_KEYS}
        config = _build_config(technique, fields, item_lines)
        finetune = _build_finetune(item.get("finetune"), item_lines.get("finetune", item_lines))
        name = str(item.get("name") or technique)
        spec = TECHNIQUES[technique]
        if spec.final and not spec.trains_itself and finetune.epochs:
            raise _err(item_lines["_line"], f"'{technique}' does not train; drop its finetune epochs",
                       hint="fine-tune in the stage before, or use technique: qat")
        if spec.trains_itself and not finetune.epochs:
            raise _err(item_lines["_line"], f"'{technique}' trains: give it finetune: {{epochs: N}} with N >= 1")
        keep = _build_keep(item.get("keep", "always"), item_lines)
        if technique == "half" and keep == "if_faster":  # its CPU timing cannot judge a GPU deployment
            raise _err(item_lines["_line"], "keep: if_faster would judge the half stage on ONNX Runtime's CPU "
                       "provider, where float16 brings no speed-up", hint="drop keep: if_faster from the half stage")
        stages.append(Stage(technique, name, config, finetune, item_lines["_line"], keep))
    for stage in stages[1:]:
        if TECHNIQUES[stage.technique].first:
            raise _err(stage.line, f"'{stage.technique}' picks the model the later stages compress and must be "
                                   "the first stage")
    for stage in stages[:-1]:
        if TECHNIQUES[stage.technique].final:
            raise _err(stage.line, f"'{stage.technique}' produces the deployed ONNX model and must be the last stage")
    return Recipe(str(data.get("name") or origin), str(data.get("description") or ""), stages, text, targets)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file (``yaml.safe_load`` only)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DeepslimError(f"cannot read recipe {path}: {exc.strerror}",
                            hint="shipped recipes live in recipes/ (e.g. recipes/prune-quantize.yaml)") from exc
    return parse_recipe(text, origin=str(path))
