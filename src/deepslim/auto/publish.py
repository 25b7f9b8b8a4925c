"""The result of `deepslim auto` on disk: OUT/model, OUT/model.onnx, OUT/recipe.yaml, OUT/metrics.json
and OUT/report.html, whatever the status (a run that misses its target still returns its best).

What is published: the best finalist (keeps the accuracy bound, best on the target's metric); else
the fallback finalist (missed the bound by least); else, when no full run fitted the budget, the
best proxy trial's model, scored on the test split here so its figure is comparable.

Example:
    >>> publish_result(Path("runs/auto"), result, space, proxy, config)     # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..core import log
from ..export.files import write_atomic, write_json_atomic
from ..pipeline.publish import deployed_onnx
from ..pipeline.tasks import task_for
from .finalists import full_recipe
from .picking import FinalistPicker


def _copy_model(stage_dir: Path, out: Path) -> None:
    tmp = out / "model.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(stage_dir / "model", tmp)
    if (out / "model").exists():
        shutil.rmtree(out / "model")
    tmp.rename(out / "model")
    source = deployed_onnx(stage_dir)
    write_atomic(out / "model.onnx", lambda p: shutil.copyfile(source, p))


def _last_stage(folder: Path) -> Path:
    return sorted(p for p in (folder / "stages").iterdir() if p.is_dir() and not p.name.endswith(".partial"))[-1]


def publish_result(out: Path, result: dict, space, proxy, config) -> None:
    chosen = result.get("best") or result.get("fallback")
    if chosen is not None:
        _copy_model(out / chosen["folder"], out)
        recipe = full_recipe(space, chosen["plan"], chosen["trial"], config.max_drop, len(proxy.full_data.train))
        result["published"] = {"trial": chosen["trial"], "fidelity": "full", "description": chosen["description"],
                               "folder": chosen["folder"],  # finalists/trial-NNNN-epE: the trial's plan, fine-tuned longer
                               "kind": "best" if chosen is result.get("best") else "fallback",
                               **{k: chosen["measured"][k] for k in ("accuracy", "drop", "speedup", "ort_latency_ms",
                                                                     "macs", "size_mb")}}
    else:
        here = [r for r in result["trials"] if (out / "trials" / f"{r['trial']:04d}" / "stages").is_dir()]
        row = FinalistPicker(here, config.target, config.max_drop, config.proxy_slack).next([])
        if row is not None:
            stage_dir = _last_stage(out / "trials" / f"{row['trial']:04d}")
            full = task_for(proxy.full_data, proxy.model, proxy.device)
            log(f"no full run fitted the budget: publishing proxy trial {row['trial']}, scored on the test split")
            test = full.score_onnx(deployed_onnx(stage_dir))["accuracy"]
            base = full.score_onnx(out / "baseline" / "model.onnx")["accuracy"]
            _copy_model(stage_dir, out)
            recipe = full_recipe(space, row["plan"], row["trial"], config.max_drop, len(proxy.full_data.train))
            result["published"] = {"trial": row["trial"], "fidelity": "proxy", "description": row["description"],
                                   "kind": "proxy", "accuracy": test, "drop": base - test,
                                   "speedup": row["speedup"], "ort_latency_ms": row["ort_latency_ms"],
                                   "macs": row["macs"], "size_mb": row["size_mb"]}
        else:
            recipe = None
            result["published"] = None
    if recipe:
        write_atomic(out / "recipe.yaml", lambda p: p.write_text(recipe))
    write_json_atomic(out / "metrics.json", result)
    from .report import write_auto_report

    write_auto_report(out, result)


