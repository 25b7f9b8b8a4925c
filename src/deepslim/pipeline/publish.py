"""What a run hands over: each stage's saved model described as what it ships, and the final model
published as OUT/model and OUT/model.onnx with a record of how it was made.

Example:
    >>> deployed_onnx(Path("runs/demo/stages/02-int8")).name          # doctest: +SKIP
    'model.int8.onnx'
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..export.files import write_atomic, write_json_atomic
from ..export.model_card import write_model_card
from .recipe import Recipe
from .techniques import DEPLOYED_FILES


def deployed_onnx(folder: Path) -> Path:
    """A stage's deployable ONNX file: the int8 (or float16) one when the stage wrote one."""
    return next((folder / f for f in DEPLOYED_FILES if (folder / f).is_file()), folder / "model.onnx")


def score_metadata(measured: dict, test_count: int, runtime: str) -> dict:
    """A saved model's ``metrics``: its test accuracy, or for retrieval its recall@1/@10 and MRR."""
    if "retrieval" in measured:
        r = measured["retrieval"]
        return {"test_recall@1": r["recall@1"], "test_recall@10": r["recall@10"], "test_mrr": r["mrr"],
                "test_pairs": test_count, "runtime": runtime}
    return {"test_accuracy": measured["accuracy"], "test_images": test_count, "runtime": runtime}


def provenance(metrics: dict, recipe: Recipe, source: str, command: str) -> dict:
    """What OUT/model's metadata says about how it was made (model cards read it)."""
    base, final = metrics["baseline"], metrics["final"]
    shipped = [s for s in metrics["stages"] if s.get("kept", True)]
    epochs = sum(s.get("finetune", {}).get("epochs", 0) for s in shipped)
    return {"compression": {
        "source": source, "method": f"recipe {recipe.name}", "recipe": recipe.name, "command": command,
        "stages": [f"{s['index']}. {s['name']} ({s['technique']})" for s in shipped],
        "dropped": [f"{s['index']}. {s['name']}" for s in metrics["stages"] if not s.get("kept", True)],
        "accuracy_before": base["accuracy"], "accuracy_after": final["accuracy"],
        "macs_before": base["macs"], "macs_after": final["macs"], "finetune_epochs": epochs,
        "distilled": any(s.get("finetune", {}).get("distill") for s in shipped),
        "finetune_seeds": sorted({s["finetune"].get("seed", 0) for s in shipped if s.get("finetune", {}).get("epochs")}),
        "data": {k: metrics["data"].get(k, "image" if k == "unit" else None) for k in ("train_images", "subset", "unit")},
        "metric": metrics.get("task", {}).get("metric", "accuracy"),
        "batchnorm_reestimated": any("batchnorm_reestimated" in s.get("details", {}) for s in shipped)}}


def describe_saved_model(model_dir: Path, measured: dict, test_images: int, deployed: Path | None,
                         precision: str | None = None) -> None:
    """Give a stage's saved model its own measured accuracy and, for int8 or float16, the deployed ONNX file.

    ``deepslim eval``/``profile`` then measure what the stage ships (the int8 ONNX model on ONNX
    Runtime), and the folder no longer carries the input model's metrics inherited by ``save``.
    """
    meta_file = model_dir / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["metrics"] = score_metadata(measured, test_images, measured["runtime"])
    if deployed is not None:
        write_atomic(model_dir / deployed.name, lambda p: shutil.copyfile(deployed, p))
        meta["deploy"] = {"onnx": deployed.name, "runtime": "onnxruntime", "precision": precision or "int8"}
    write_json_atomic(meta_file, meta)


def publish(stage_dir: Path, out: Path, record: dict) -> None:
    """Copy the shipped model and its ONNX file to OUT/model and OUT/model.onnx (atomically).

    OUT/model's metadata also names the source model and the recipe (``record``, from ``provenance``).
    """
    tmp = out / "model.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(stage_dir / "model", tmp)
    meta = json.loads((tmp / "metadata.json").read_text())
    write_json_atomic(tmp / "metadata.json", {**meta, **record})
    write_model_card(tmp)  # names the source model, the recipe and its stages
    if (out / "model").exists():
        shutil.rmtree(out / "model")
    tmp.rename(out / "model")
    source = deployed_onnx(stage_dir)
    write_atomic(out / "model.onnx", lambda p: shutil.copyfile(source, p))
