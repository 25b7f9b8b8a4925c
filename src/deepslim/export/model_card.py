"""A human-readable MODEL_CARD.md written from an artifact's metadata.

A trained model's card gives its training; a distilled one's also names its teacher; a model
derived by prune, factorize, quantize or compress names its source model and what was done to it.

Example:
    >>> import deepslim, tempfile
    >>> folder = deepslim.save(deepslim.create_model("lenet5"), tempfile.mkdtemp() + "/m",
    ...                        metadata={"dataset": {"name": "synthetic"}})
    >>> write_model_card(folder).read_text().splitlines()[0]
    '# lenet5 trained on synthetic'
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core import cpu_name
from ..core.text import plural
from .artifact import read_metadata
from .files import write_atomic

# Metadata keys written by the commands that derive a model from another, and the verb for each.
DERIVED = {"pruning": "pruned", "factorization": "factorized", "quantization": "quantized",
           "compression": "compressed"}


def write_model_card(path: str | Path) -> Path:
    """Write ``MODEL_CARD.md`` into the artifact folder ``path`` from its metadata."""
    path = Path(path)
    meta = read_metadata(path)
    lines = [f"# {_title(meta)}", ""] + _summary(meta) + _derivation(meta) + _search(meta) + _training(meta)
    lines += [f"- Saved: {meta.get('saved_at')}", ""]
    write_atomic(path / "MODEL_CARD.md", lambda p: p.write_text("\n".join(lines)))
    return path / "MODEL_CARD.md"


def _title(meta: dict) -> str:
    model, data = meta.get("model"), meta.get("dataset", {}).get("name")
    steps = [key for key in meta if key in DERIVED]
    if steps:  # the newest step is the last key written
        last = meta[steps[-1]]
        how = f" ({last['method']})" if last.get("method") else ""
        return f"{model} {DERIVED[steps[-1]]}{how} from {last.get('source')}"
    search = meta.get("nas", {}).get("search")
    if search:
        return f"{model} found by {search.get('strategy')} search in the supernet {search.get('supernet')}"
    teacher = meta.get("distillation", {}).get("teacher")
    return f"{model} distilled from {teacher} on {data}" if teacher else f"{model} trained on {data}"


def _summary(meta: dict) -> list[str]:
    m, d = meta.get("metrics", {}), meta.get("dataset", {})
    runtime = f", {m['runtime']}" if m.get("runtime") else ""
    lines = [f"- Parameters: {meta.get('params'):,}", f"- Model options: `{meta.get('model_kwargs')}`"]
    if "test_recall@1" in m:  # a retrieval model (deepslim compress on a text data set)
        lines.append(f"- Test retrieval (all {m.get('test_pairs')} test pairs, each query against every document"
                     f"{runtime}): **recall@1 {m['test_recall@1']:.2f}%**, recall@10 {m['test_recall@10']:.2f}%, "
                     f"MRR {m['test_mrr']:.3f}")
    else:
        lines.append(f"- Test accuracy (top-1, all {m.get('test_images')} test images{runtime}): "
                     f"**{m.get('test_accuracy', 0):.2f}%**")
    if "val_accuracy" in m:
        lines.append(f"- Validation accuracy ({d.get('sizes', {}).get('val')} images held out of train): "
                     f"{m['val_accuracy']:.2f}%")
    return lines


def _derivation(meta: dict) -> list[str]:
    """One line per step that made this model from another, oldest first."""
    lines = []
    for key in (k for k in meta if k in DERIVED):
        s = meta[key]
        what = s.get("method") or key
        line = f"- {DERIVED[key].capitalize()} from `{s.get('source')}` ({what})"
        if "accuracy_before" in s or "float_accuracy" in s:
            before = s.get("accuracy_before", s.get("float_accuracy"))
            after = s.get("accuracy_after", s.get("accuracy"))
            line += f": {s.get('metric', 'accuracy')} {before:.2f}% -> {after:.2f}%"
        if s.get("macs_before") and s.get("macs_after") is not None:
            line += f", MACs {s['macs_before'] / 1e6:.2f}M -> {s['macs_after'] / 1e6:.2f}M"
        if s.get("finetune_epochs"):
            data = s.get("data", {})
            unit = data.get("unit") or "image"
            images = f" on {plural(data['train_images'], 'training ' + unit)}" if data.get("train_images") else ""
            subset = f" (--subset {data['subset']})" if data.get("subset") else ""
            line += f"; fine-tuned {plural(s['finetune_epochs'], 'epoch')}{images}{subset}"
            line += " distilling from the source model" if s.get("distilled") else ""
            seeds = s.get("finetune_seeds") or []
            line += f" (seed {', '.join(str(x) for x in seeds)})" if any(seeds) else ""
        if s.get("batchnorm_reestimated"):
            line += "; BatchNorm statistics re-estimated"
        lines.append(line)
        if s.get("stages"):
            dropped = f" (dropped: {', '.join(s['dropped'])})" if s.get("dropped") else ""
            lines.append(f"  - Stages: {'; '.join(s['stages'])}{dropped}")
        if s.get("command"):
            lines.append(f"  - Command: `{s['command']}`")
    return lines


def _search(meta: dict) -> list[str]:
    """For a subnet picked by `deepslim nas search`: its arch, the limits, whether they were met, the command."""
    nas = meta.get("nas", {})
    search = nas.get("search")
    if not search:
        return []
    best = search.get("best") or {}
    limits = {k: v for k, v in (search.get("constraints") or {}).items() if v is not None and k != "type"}
    lines = [f"- Architecture (space `{nas.get('space', {}).get('name', nas.get('space', {}).get('type'))}`): "
             f"`{json.dumps(nas.get('arch'))}`",
             f"- Search: {search.get('strategy')}, {search.get('budget')} subnets judged, seed {search.get('seed')}, "
             f"limits {limits or 'none'}; {'met' if search.get('feasible') else 'NOT met'}: {search.get('message')}",
             f"- Validation accuracy in the search (BN recalibrated on {search.get('calibration_images')} training "
             f"images): {best.get('accuracy', float('nan')):.2f}%"]
    if search.get("command"):
        lines.append(f"- Command: `{search['command']}`")
    return lines


def _training(meta: dict) -> list[str]:
    """How the model (or, for a derived model, its first source) was trained."""
    t = meta.get("training", {})
    if not t:
        return []
    cfg = t.get("config", {})
    derived = any(k in DERIVED for k in meta)
    label = "Source model's training" if derived else "Training"
    lines = [f"- {label}: {plural(cfg.get('epochs') or 0, 'epoch')}, {cfg.get('optimizer')} lr {cfg.get('lr')}, "
             f"{cfg.get('schedule')} schedule, batch {cfg.get('batch_size')}, weight decay {cfg.get('weight_decay')}, "
             f"label smoothing {cfg.get('label_smoothing')}, augmentation "
             f"{'flip+crop' if cfg.get('augment') else 'none'}, seed {cfg.get('seed')}"]
    kd = meta.get("distillation", {})
    if kd.get("teacher"):
        k = kd.get("kd", {})
        hints = f", feature hints {k['hints']}" if k.get("hints") else ""
        lines.append(f"- Teacher: `{kd['teacher']}` (knowledge distillation, temperature {k.get('temperature')}, "
                     f"alpha {k.get('alpha')}{hints})")
    lines.append(f"- {'Source command' if derived else 'Command'}: `{t.get('command')}`")
    if not derived:
        lines.append(f"- Training time: {t.get('train_seconds', 0) / 60:.1f} min of epochs on {t.get('device')} "
                     f"({cpu_name()}, {os.cpu_count()} cores), torch {meta.get('versions', {}).get('torch')}")
    return lines
