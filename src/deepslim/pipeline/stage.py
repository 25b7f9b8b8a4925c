"""One recipe stage, run and measured into its own folder; and the float measurements around it.

``run_stage`` applies a technique (``techniques.py``), fine-tunes when the stage says so, saves the
model, measures what the stage ships (its int8 or float16 ONNX file where it wrote one) and renames
``stages/NN-name.partial`` to ``stages/NN-name`` only when all of that is done. ``compress``
(``runner.py``) runs the stages in order; ``deepslim auto``'s proxy trials run them on a subset.

Example:
    >>> record, model = run_stage(1, recipe.stages[0], model, teacher, task, Path("OUT"), device, [], 0.5)  # doctest: +SKIP
    >>> record["accuracy"], stage_dir(Path("OUT"), 1, recipe.stages[0]).name                               # doctest: +SKIP
    (94.37, '01-prune-channels')
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import torch
from torch import nn

from ..core import log
from ..core.text import plural
from ..export import save
from ..export.files import write_json_atomic
from ..prune.masks import KeepMasked, MaskSet
from .measure import layer_macs, measure
from .publish import describe_saved_model, score_metadata
from .recipe import Stage
from .techniques import TECHNIQUES, StageContext

WEIGHTS = "weights.safetensors"  # deepslim.save's weights file: sparse tensors stored compactly


def stage_dir(out: Path, index: int, stage: Stage) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in stage.name)
    return out / "stages" / f"{index:02d}-{safe}"


def masks_from_zeros(model: nn.Module, names: list[str]) -> MaskSet:
    modules = dict(model.named_modules())
    return MaskSet({n: (modules[n].weight != 0).cpu() for n in names if n in modules
                    and getattr(modules[n], "weight", None) is not None})


def measure_baseline(original: nn.Module, folder: Path, task, latency_seconds, device) -> dict:
    """The input model's metrics; also saved under ``folder/model`` (its weights file is the size baseline)."""
    record = measure_float(copy.deepcopy(original).to(device), folder, task, latency_seconds, device)
    record["layer_macs"] = layer_macs(copy.deepcopy(original).cpu(), task.example)
    # save() rebuilds the architecture to check it, and building layers draws initial weights from
    # the global RNG: keep the stream the stages see exactly as it was before baselines were saved.
    with torch.random.fork_rng(devices=[]):
        save(copy.deepcopy(original).cpu(), folder / "model", overwrite=True,
             metadata={"metrics": score_metadata(record, len(task.data.test), "pytorch")})
    record["weights_bytes"] = (folder / "model" / WEIGHTS).stat().st_size
    return record


def measure_float(model: nn.Module, folder: Path, task, latency_seconds, device) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    task.export(model, folder / "model.onnx")
    model.to(device)
    return measure(model, folder / "model.onnx", task, latency_seconds=latency_seconds, device=device)


def log_stage_data(stage: Stage, task, spec) -> dict:
    """Say (and record) what data the stage trains on."""
    ft, data = stage.finetune, task.data
    subset = (getattr(data, "options", None) or {}).get("subset")
    note = {"finetune_epochs": ft.epochs, "train_images": len(data.train) if ft.epochs else 0, "subset": subset}
    if ft.epochs:
        kind = "quantization-aware training" if spec.trains_itself else "fine-tune"
        log(f"  {kind}: {plural(ft.epochs, 'epoch')} on {task.describe_finetune()}"
            f"{f' (--subset {subset})' if subset else ''}, lr {ft.lr:g}, batch {ft.batch_size}"
            f"{', distilled from the input model' if ft.distill and task.kind != 'retrieval' else ''}"
            f"{f', seed {ft.seed}' if ft.seed else ''}")
    else:
        log("  no fine-tune")
    return note


def run_stage(index: int, stage: Stage, model: nn.Module, teacher: nn.Module, task, out: Path, device, masked_layers: list[str], latency_seconds: float,
              source: nn.Module | None = None) -> tuple[dict, nn.Module]:
    final_dir = stage_dir(out, index, stage)
    work_dir = final_dir.with_name(final_dir.name + ".partial")
    if work_dir.exists():
        shutil.rmtree(work_dir)
    if final_dir.exists():  # finished but not recorded (killed between rename and state write): redo it
        shutil.rmtree(final_dir)
    work_dir.mkdir(parents=True)
    spec = TECHNIQUES[stage.technique]
    ft = stage.finetune
    data, example = task.data, task.example
    data_note = log_stage_data(stage, task, spec)
    macs_before = layer_macs(model.cpu(), example)
    macs_in = task.macs(model)  # int8 keeps these multiply-adds, in integers
    model.to(device)

    def train(target: nn.Module, callbacks: list) -> None:
        task.finetune(target, teacher, ft, callbacks)

    ctx = StageContext(model, data, example, device, work_dir, task.calibration, train, source=source, task=task,
                       teacher=teacher)
    if masked_layers:  # weights zeroed by an earlier unstructured stage stay zero
        ctx.finetune_callbacks.append(KeepMasked(masks_from_zeros(model, masked_layers)))
    details = spec.apply(ctx, stage.config)
    model = ctx.model
    if ft.epochs and not spec.trains_itself:
        train(model, ctx.finetune_callbacks)
    model = model.eval()
    deployed = ctx.deployed_onnx is not None  # an int8 or float16 ONNX file: measured as it ships
    int8 = deployed and ctx.precision == "int8"
    metadata = {"dataset": data.describe(),
                "compression_stage": {"index": index, "name": stage.name, "technique": stage.technique}}
    if isinstance(example, torch.Tensor):
        metadata["input_shape"] = list(example.shape)
    save(copy.deepcopy(model).cpu(), work_dir / "model", metadata=metadata)
    if deployed:
        measured = measure(model, ctx.deployed_onnx, task, precision=ctx.precision, macs=macs_in,
                           latency_seconds=latency_seconds, device=device)
    else:
        task.export(model, work_dir / "model.onnx")
        model.to(device)
        measured = measure(model, work_dir / "model.onnx", task, latency_seconds=latency_seconds, device=device)
    describe_saved_model(work_dir / "model", measured, len(data.test), ctx.deployed_onnx, ctx.precision)
    unstructured = [n for n in details.get("plan", {}).get("layers", {})
                    if "sparsity" in details["plan"]["layers"][n]]
    record = {"index": index, "name": stage.name, "technique": stage.technique, "config": stage.config.to_dict(),
              "finetune": dict(stage.finetune.__dict__), "int8": int8, "precision": ctx.precision or "float32", **measured, "details": details,
              "masked_layers": unstructured, "data": data_note,
              "weights_bytes": (work_dir / "model" / WEIGHTS).stat().st_size,
              "layer_macs": macs_before if deployed else layer_macs(copy.deepcopy(model).cpu(), example)}
    write_json_atomic(work_dir / "stage.json", record)
    work_dir.rename(final_dir)
    return record, model
