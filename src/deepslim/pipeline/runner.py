"""Run a recipe: every stage on a copy of the input, measured, saved, resumable.

Layout of ``OUT``::

    recipe.yaml        the recipe text this run follows (a resume must match it)
    state.json         finished stages; ``done`` once the final artifacts exist
    metrics.json       baseline, stages (list) and final, rewritten after every stage
    stages/NN-name/    model/ (reloadable), model.onnx or model.int8.onnx, stage.json
    model/, model.onnx the final model (int8 ONNX when the recipe quantizes), report.html

A stage is built in ``stages/NN-name.partial`` and renamed when complete, so an
interrupted stage leaves nothing half-written and the next run starts it again.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import torch
from torch import nn

from ..core import DeepslimError, log
from ..distill import KD, Distillation
from ..export import export_onnx, load, save
from ..export.files import write_atomic, write_json_atomic
from ..profiling.counting import count_ops
from ..profiling.latency import compare_latency, environment
from ..prune.masks import KeepMasked, MaskSet
from ..train import TrainConfig, Trainer
from .measure import layer_macs, measure
from .recipe import Recipe, Stage
from .techniques import TECHNIQUES, StageContext

STATE = "state.json"
METRICS = "metrics.json"


def prepare_output(out: Path, recipe: Recipe, overwrite: bool) -> dict:
    """The run state to continue from (empty for a fresh run); refuses to clobber anything else."""
    state_file = out / STATE
    if out.exists() and not out.is_dir():
        raise DeepslimError(f"--out {out} exists and is not a folder", hint="choose another --out")
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        same = state.get("recipe_digest") == recipe.digest
        if overwrite:
            shutil.rmtree(out)
        elif state.get("done"):
            raise DeepslimError(f"--out {out} already holds a finished compression run",
                                hint="use --overwrite to replace it, or choose another folder")
        elif not same:
            raise DeepslimError(f"--out {out} holds an unfinished run of a different recipe",
                                hint="rerun with that recipe to resume, or use --overwrite to start over")
        else:
            return state
    elif out.is_dir() and any(out.iterdir()):
        raise DeepslimError(f"--out {out} holds files that are not a deepslim compression run; refusing to use it",
                            hint="choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "recipe.yaml", lambda p: p.write_text(recipe.source))
    state = {"recipe_digest": recipe.digest, "finished": [], "done": False}
    write_json_atomic(state_file, state)
    return state


def _stage_dir(out: Path, index: int, stage: Stage) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in stage.name)
    return out / "stages" / f"{index:02d}-{safe}"


def _masks_from_zeros(model: nn.Module, names: list[str]) -> MaskSet:
    modules = dict(model.named_modules())
    return MaskSet({n: (modules[n].weight != 0).cpu() for n in names if n in modules
                    and getattr(modules[n], "weight", None) is not None})


def compress(model: nn.Module, data, recipe: Recipe, out: str | Path, *, device: torch.device,
             teacher: nn.Module | None = None, source: str = "", overwrite: bool = False,
             latency_seconds: float = 1.0) -> dict:
    """Run ``recipe`` on a copy of ``model``; returns the metrics dict (also in ``out/metrics.json``).

    ``teacher`` (default: a copy of ``model``) is what ``finetune: {distill: true}`` distils from.
    Rerunning with the same recipe and ``out`` resumes after the last finished stage.

    Example:
        >>> metrics = compress(model, data, load_recipe("recipes/prune-quantize.yaml"), "runs/c",
        ...                    device=torch.device("cpu"))                     # doctest: +SKIP
    """
    out = Path(out)
    state = prepare_output(out, recipe, overwrite)
    metrics_file = out / METRICS
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() and state["finished"] else {}
    example = data.test.images[:1].to(device)
    calibration = data.train.images[:2048]
    original = model
    teacher = teacher if teacher is not None else copy.deepcopy(original).eval()
    if "baseline" not in metrics:
        log("measuring the baseline (full test split, latency on PyTorch and ONNX Runtime)")
        metrics = {"recipe": recipe.name, "description": recipe.description, "source": source,
                   "environment": environment(), "stages": []}
        metrics["baseline"] = _measure_float(copy.deepcopy(original).to(device), out / "stages" / "00-baseline",
                                             data, example, latency_seconds, device)
        metrics["baseline"]["layer_macs"] = layer_macs(copy.deepcopy(original).cpu(), example.cpu())
        write_json_atomic(metrics_file, metrics)
    current = copy.deepcopy(original).to(device)
    if state["finished"]:
        last = _stage_dir(out, len(state["finished"]), recipe.stages[len(state["finished"]) - 1])
        current = load(last / "model").to(device)
        log(f"resuming after stage {len(state['finished'])} ({recipe.stages[len(state['finished']) - 1].name})")
    masked_layers: list[str] = [n for s in metrics["stages"] for n in s.get("masked_layers", [])]
    for index, stage in enumerate(recipe.stages, start=1):
        if index <= len(state["finished"]):
            continue
        log(f"stage {index}/{len(recipe.stages)}: {stage.name} ({stage.technique})")
        started = time.perf_counter()
        try:
            record, current = _run_stage(index, stage, current, teacher, data, example, calibration, out, device,
                                         masked_layers, latency_seconds)
        except KeyboardInterrupt:
            raise DeepslimError(f"interrupted during stage {index} ({stage.name}); finished stages are kept",
                                hint="rerun the same command to resume") from None
        except DeepslimError as exc:
            raise DeepslimError(f"stage {index} ({stage.name}) failed: {exc.message}",
                                hint=(exc.hint + "; " if exc.hint else "") +
                                "earlier stages are kept; fix the recipe and rerun to resume") from exc
        record["seconds"] = round(time.perf_counter() - started, 1)
        masked_layers += record.get("masked_layers", [])
        metrics["stages"].append(record)
        write_json_atomic(metrics_file, metrics)
        state["finished"].append(stage.name)
        write_json_atomic(out / STATE, state)
        log(f"stage {index} done: {record['accuracy']:.2f}% accuracy, {record['macs'] / 1e6:.2f}M MACs, "
            f"onnxruntime b1 {record['latency_ms']['onnxruntime']['1']:.3f} ms")
    last_dir = _stage_dir(out, len(recipe.stages), recipe.stages[-1])
    metrics["final"] = {k: v for k, v in metrics["stages"][-1].items() if k != "details"}
    metrics["final"]["layer_macs"] = layer_macs(load(last_dir / "model").cpu(), example.cpu()) \
        if not (last_dir / "model.int8.onnx").is_file() else metrics["stages"][-1].get("layer_macs", {})
    _publish(last_dir, out)
    # The headline speed-up: baseline and final ONNX models timed interleaved (A B A B ...), so
    # drifts of a shared machine hit both alike; the per-stage medians above are timed apart.
    # The window is long (10x the per-stage one) because small models' batch-1 times on a shared
    # 2-core VM flip between two levels every few seconds (BENCHMARKS.md, "Batch-1 levels on this machine"): a
    # short window lands in one level; a long one gives the median over both.
    log("timing the final model against the baseline, interleaved, on ONNX Runtime")
    rows = compare_latency(out / "stages" / "00-baseline" / "model.onnx", out / "model.onnx", example.cpu(),
                           runtimes=("onnxruntime",), min_seconds=max(latency_seconds, 0.05) * 10)
    metrics["final"]["speedup_vs_baseline"] = {"onnxruntime": {str(r.batch_size): r.to_dict() for r in rows}}
    write_json_atomic(metrics_file, metrics)
    from .report import write_report

    write_report(out)
    state["done"] = True
    write_json_atomic(out / STATE, state)
    return metrics


def _measure_float(model: nn.Module, folder: Path, data, example, latency_seconds, device) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(model.cpu().eval(), folder / "model.onnx", example.cpu())
    model.to(device)
    return measure(model, folder / "model.onnx", data, example, int8=False, latency_seconds=latency_seconds,
                   device=device)


def _run_stage(index: int, stage: Stage, model: nn.Module, teacher: nn.Module, data, example, calibration,
               out: Path, device, masked_layers: list[str], latency_seconds: float) -> tuple[dict, nn.Module]:
    final_dir = _stage_dir(out, index, stage)
    work_dir = final_dir.with_name(final_dir.name + ".partial")
    if work_dir.exists():
        shutil.rmtree(work_dir)
    if final_dir.exists():  # finished but not recorded (killed between rename and state write): redo it
        shutil.rmtree(final_dir)
    work_dir.mkdir(parents=True)
    spec = TECHNIQUES[stage.technique]
    ft = stage.finetune
    macs_before = layer_macs(model.cpu(), example.cpu())
    macs_in = count_ops(model.eval(), (example.cpu(),)).macs  # int8 keeps these multiply-adds, in integers
    model.to(device)

    def train(target: nn.Module, callbacks: list) -> None:
        if ft.distill:
            kd = KD(temperature=ft.temperature, alpha=ft.alpha)
            callbacks = [*callbacks, Distillation(target.to(device), teacher.to(device), kd, example.repeat(2, 1, 1, 1))]
        cfg = TrainConfig(epochs=ft.epochs, lr=ft.lr, batch_size=ft.batch_size, schedule="cosine")
        Trainer(target, cfg, callbacks=callbacks, device=device).fit(data.train, val_data=data.val)

    ctx = StageContext(model, data, example, device, work_dir, calibration, train)
    if masked_layers:  # weights zeroed by an earlier unstructured stage stay zero
        ctx.finetune_callbacks.append(KeepMasked(_masks_from_zeros(model, masked_layers)))
    details = spec.apply(ctx, stage.config)
    model = ctx.model
    if ft.epochs and not spec.trains_itself:
        train(model, ctx.finetune_callbacks)
    model = model.eval()
    int8 = ctx.int8_path is not None
    save(copy.deepcopy(model).cpu(), work_dir / "model",
         metadata={"dataset": data.describe(), "input_shape": list(example.shape),
                   "compression_stage": {"index": index, "name": stage.name, "technique": stage.technique}})
    if int8:
        onnx_path = ctx.int8_path
        measured = measure(model, onnx_path, data, example, int8=True, macs=macs_in,
                           latency_seconds=latency_seconds, device=device)
    else:
        export_onnx(model.cpu(), work_dir / "model.onnx", example.cpu())
        model.to(device)
        measured = measure(model, work_dir / "model.onnx", data, example, int8=False, latency_seconds=latency_seconds,
                           device=device)
    unstructured = [n for n in details.get("plan", {}).get("layers", {})
                    if "sparsity" in details["plan"]["layers"][n]]
    record = {"index": index, "name": stage.name, "technique": stage.technique, "config": stage.config.to_dict(),
              "finetune": dict(stage.finetune.__dict__), "int8": int8, **measured, "details": details,
              "masked_layers": unstructured,
              "layer_macs": macs_before if int8 else layer_macs(copy.deepcopy(model).cpu(), example.cpu())}
    write_json_atomic(work_dir / "stage.json", record)
    work_dir.rename(final_dir)
    return record, model


def _publish(stage_dir: Path, out: Path) -> None:
    """Copy the last stage's model and ONNX file to OUT/model and OUT/model.onnx (atomically)."""
    tmp = out / "model.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(stage_dir / "model", tmp)
    if (out / "model").exists():
        shutil.rmtree(out / "model")
    tmp.rename(out / "model")
    source = stage_dir / ("model.int8.onnx" if (stage_dir / "model.int8.onnx").is_file() else "model.onnx")
    write_atomic(out / "model.onnx", lambda p: shutil.copyfile(source, p))
