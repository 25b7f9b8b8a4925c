"""Run a recipe: every stage on a copy of the input, measured, saved, resumable.

Layout of ``OUT``::

    recipe.yaml        the recipe text this run follows (a resume must match it)
    state.json         finished stages; ``done`` once the final artifacts exist
    metrics.json       baseline, stages (list) and final, rewritten after every stage
    stages/NN-name/    model/ (reloadable), model.onnx or model.int8.onnx, stage.json
    model/, model.onnx the final model (int8 ONNX when the recipe quantizes), report.html

A stage is built in ``stages/NN-name.partial`` and renamed when complete, so an
interrupted stage leaves nothing half-written and the next run starts it again. A stage with
``keep: if_faster`` that turns out measurably slower than its input is recorded but not
shipped: later stages continue from its input (see ``compare.py`` for the rule).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import shlex
import shutil
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..core import DeepslimError, log
from ..core.errors import Interrupted
from ..core.text import plural
from ..export import load
from ..export.files import write_atomic, write_json_atomic
from ..profiling.environment import environment
from ..profiling.latency import interleave_latency
from . import compare as comparing
from .measure import layer_macs
from .nas_stage import is_supernet, prepare_supernet_source
from .publish import deployed_onnx, provenance, publish
from .recipe import Recipe
from .stage import measure_baseline, run_stage, stage_dir
from .tasks import check_recipe_fits, task_for
from .techniques import DEPLOYED_FILES, TECHNIQUES

STATE = "state.json"
METRICS = "metrics.json"


def _data_key(data) -> dict:
    """What a resumed run must train on again: the data set and the --subset that picked its images."""
    return {"name": getattr(data, "name", None), "subset": (getattr(data, "options", None) or {}).get("subset"),
            "train_images": len(data.train)}


def prepare_output(out: Path, recipe: Recipe, overwrite: bool, data=None) -> dict:
    """The run state to continue from (empty for a fresh run); refuses to clobber anything else,
    and refuses to resume on other data than the run started with."""
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
            recorded = state.get("data")
            if data is not None and recorded and recorded != _data_key(data):
                subset = f"--subset {recorded['subset']}" if recorded.get("subset") else "no --subset"
                raise DeepslimError(f"--out {out} holds an unfinished run on other data ({recorded['name']}, "
                                    f"{recorded['train_images']:,} training samples)",
                                    hint=f"rerun with the same data and {subset} to resume, or use --overwrite "
                                         "to start over")
            return state
    elif out.is_dir() and any(out.iterdir()):
        raise DeepslimError(f"--out {out} holds files that are not a deepslim compression run; refusing to use it",
                            hint="choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "recipe.yaml", lambda p: p.write_text(recipe.source))
    state = {"recipe_digest": recipe.digest, "finished": [], "done": False,
             **({"data": _data_key(data)} if data is not None else {})}
    write_json_atomic(state_file, state)
    return state


def _model_dir(out: Path, recipe: Recipe, index: int) -> Path:
    """The folder of model ``index`` of a run (0: the baseline, saved under stages/00-baseline)."""
    return out / "stages" / "00-baseline" if index == 0 else stage_dir(out, index, recipe.stages[index - 1])


def _kept_index(metrics: dict) -> int:
    """The index of the model the next stage starts from: the last stage shipped (0: the input)."""
    return max([s["index"] for s in metrics["stages"] if s.get("kept", True)], default=0)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def compress(model: nn.Module, data, recipe: Recipe, out: str | Path, *, device: torch.device,
             teacher: nn.Module | None = None, source: str = "", overwrite: bool = False,
             latency_seconds: float = 1.0, command: str = "", compare: Callable | None = None) -> dict:
    """Run ``recipe`` on a copy of ``model``; returns the metrics dict (also in ``out/metrics.json``).

    ``teacher`` (default: a copy of ``model``) is what ``finetune: {distill: true}`` distils from.
    Rerunning with the same recipe and ``out`` resumes after the last finished stage; ``command``
    (recorded, and named in the resume hint) is the command line that started the run.
    ``compare`` times models in turns (default ``interleave_latency``; tests inject a fake).

    Example:
        >>> metrics = compress(model, data, load_recipe("recipes/prune-quantize.yaml"), "runs/c",
        ...                    device=torch.device("cpu"))                     # doctest: +SKIP
    """
    out = Path(out)
    compare = compare or interleave_latency
    task = task_for(data, model, device)  # what the data set asks of every measurement and fine-tune
    check_recipe_fits(recipe, task)       # before --out is touched
    state = prepare_output(out, recipe, overwrite, data)
    started = time.perf_counter()
    metrics_file = out / METRICS
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() and state["finished"] else {}
    earlier_seconds = metrics.get("run_seconds", 0.0)
    calibration = task.calibration
    given = model  # kept whole for a stage that searches it (ofa_subnet)
    if is_supernet(model):
        model = prepare_supernet_source(model, calibration)
    elif any(TECHNIQUES[s.technique].first for s in recipe.stages):
        raise DeepslimError("the recipe starts with ofa_subnet, but the input model is not a once-for-all supernet",
                            hint="give compress --model DIR/supernet of a `deepslim nas supernet` folder")
    original = model
    teacher = teacher if teacher is not None else copy.deepcopy(original).eval()
    resume = f"rerun `{resume_command(command)}` to resume" if command else "rerun the same command to resume"

    def save_metrics() -> None:
        metrics["run_seconds"] = round(earlier_seconds + time.perf_counter() - started, 1)
        write_json_atomic(metrics_file, metrics)

    if "baseline" not in metrics:
        log("measuring the baseline (full test split, latency on PyTorch and ONNX Runtime)")
        metrics = {"recipe": recipe.name, "description": recipe.description, "source": source,
                   "command": command, "started": _now(), "threads": torch.get_num_threads(),
                   "data": task.record(), "environment": environment(), "stages": [],
                   "task": {"kind": task.kind, "metric": task.metric, "batch_sizes": [str(b) for b in task.batch_sizes]}}
        metrics["baseline"] = measure_baseline(original, out / "stages" / "00-baseline", task, latency_seconds, device)
        save_metrics()
    if command:
        metrics["command"] = command
    metrics.setdefault("data", task.record())  # runs started by an older deepslim
    metrics.setdefault("threads", torch.get_num_threads())
    _log_data(metrics["data"])
    kept = _kept_index(metrics)
    current = copy.deepcopy(original).to(device)
    if state["finished"]:
        if kept:
            current = load(_model_dir(out, recipe, kept) / "model").to(device)
        log(f"resuming after stage {len(state['finished'])} ({recipe.stages[len(state['finished']) - 1].name})")
    masked_layers: list[str] = [n for s in metrics["stages"] if s.get("kept", True) for n in s.get("masked_layers", [])]
    for index, stage in enumerate(recipe.stages, start=1):
        if index <= len(state["finished"]):
            continue
        log(f"stage {index}/{len(recipe.stages)}: {stage.name} ({stage.technique})")
        stage_started = time.perf_counter()
        try:
            record, current = run_stage(index, stage, current, teacher, task, out, device,
                                       masked_layers, latency_seconds, given)
            record["input"] = kept
            record["keep"] = stage.keep
            record["kept"] = True
            if stage.keep == "if_faster":
                record.update(_keep_check(compare, out, recipe, kept, index, task, latency_seconds))
        except KeyboardInterrupt:
            save_metrics()
            raise Interrupted(f"interrupted during stage {index} ({stage.name}); finished stages are kept",
                                hint=resume) from None
        except DeepslimError as exc:
            save_metrics()
            raise DeepslimError(f"stage {index} ({stage.name}) failed: {exc.message}",
                                hint=(exc.hint + "; " if exc.hint else "") +
                                "earlier stages are kept; fix the recipe and rerun to resume") from exc
        record["seconds"] = round(time.perf_counter() - stage_started, 1)
        write_json_atomic(stage_dir(out, index, stage) / "stage.json", record)  # with input, keep and seconds
        if record["kept"]:
            kept = index
            masked_layers += record.get("masked_layers", [])
        else:
            log(f"stage {index} dropped (keep: if_faster): {record['keep_check']['reason']}; "
                f"continuing from {'the input model' if kept == 0 else f'stage {kept}'}")
            current = (load(_model_dir(out, recipe, kept) / "model") if kept else copy.deepcopy(original)).to(device)
        metrics["stages"].append(record)
        save_metrics()
        state["finished"].append(stage.name)
        write_json_atomic(out / STATE, state)
        log(f"stage {index} done: {record['accuracy']:.2f}% {task.metric}, {record['macs'] / 1e6:.2f}M MACs, "
            f"onnxruntime b1 {record['latency_ms']['onnxruntime']['1']:.3f} ms")
    try:
        _finish(metrics, recipe, out, kept, task, latency_seconds, compare, source, command, save_metrics)
    except KeyboardInterrupt:
        save_metrics()
        raise Interrupted("interrupted while measuring the final model; every stage is kept", hint=resume) from None
    state["done"] = True
    write_json_atomic(out / STATE, state)
    return metrics


def resume_command(command: str) -> str:
    """The command that resumes: the one given, less ``--overwrite`` (which would start over)."""
    return shlex.join(t for t in shlex.split(command) if t != "--overwrite")


def _log_data(data: dict) -> None:
    subset = f" (--subset {data['subset']})" if data.get("subset") else " (the whole training split)"
    unit = data.get("unit", "image")
    log(f"data {data['name']}: fine-tunes use {plural(data['train_images'], 'training ' + unit)}{subset}, "
        f"{plural(data['val_images'], 'validation ' + unit)}; every model is evaluated on all "
        f"{plural(data['test_images'], 'test ' + unit)}")


def _compare_cases(compare: Callable, subjects: list, task, min_seconds: float) -> list:
    """``compare`` over every latency case of the task (its own input per batch size), rows in batch order."""
    return [row for batch, inputs in task.latency_cases()
            for row in compare(subjects, inputs, batch_sizes=(batch,), runtimes=(comparing.RUNTIME,),
                               min_seconds=min_seconds)]


def _keep_check(compare: Callable, out: Path, recipe: Recipe, source: int, index: int, task,
                latency_seconds: float) -> dict:
    """``keep: if_faster``: time the stage against its input now, before the next stage builds on it."""
    log(f"  keep: if_faster: timing stage {index} against its input on ONNX Runtime, interleaved")
    timed = _compare_cases(compare, [deployed_onnx(_model_dir(out, recipe, source)),
                                     deployed_onnx(_model_dir(out, recipe, index))], task,
                           max(latency_seconds, 0.05) * 5)
    decision = comparing.keep_decision({str(t.batch_size): t.compare(0, 1).to_dict() for t in timed})
    return {"kept": decision["kept"], "keep_check": decision}


def _finish(metrics: dict, recipe: Recipe, out: Path, kept: int, task, latency_seconds: float,
            compare: Callable, source: str, command: str, save_metrics: Callable) -> None:
    """Publish the shipped model, time every model in one interleaved comparison, write the headline and report."""
    from .headline import check_targets, size_headline, summary_line
    from .report import write_report

    final_dir = _model_dir(out, recipe, kept)
    record = metrics["stages"][kept - 1] if kept else dict(metrics["baseline"], index=0, name="baseline",
                                                            technique="none")
    metrics["final"] = {k: v for k, v in record.items() if k != "details"}
    metrics["final"]["layer_macs"] = layer_macs(load(final_dir / "model").cpu(), task.example) \
        if deployed_onnx(final_dir).name not in DEPLOYED_FILES else record.get("layer_macs", {})
    publish(final_dir, out, provenance(metrics, recipe, source, command))
    # One comparison feeds the table, the flags and the headline: the baseline and every stage's
    # deployed ONNX model timed in turns, so drifts of a shared machine hit all alike. The window
    # is long (10x the per-stage one, per model pair) because small models' batch-1 times on a
    # shared 2-core VM flip between two levels every few seconds (BENCHMARKS.md, "Batch-1 levels
    # on this machine"): a short window lands in one level; a long one gives the median over both.
    files = [deployed_onnx(_model_dir(out, recipe, i)) for i in range(len(recipe.stages) + 1)]
    labels = ["baseline"] + [f"{s['index']}. {s['name']}" for s in metrics["stages"]]
    window = max(latency_seconds, 0.05) * 10
    log(f"timing the baseline and {plural(len(recipe.stages), 'stage')} in turns on ONNX Runtime "
        f"(about {len(files) * window * len(task.batch_sizes):.0f} s)")
    timed = _compare_cases(compare, files, task, window)
    inputs = {s["index"]: s.get("input", s["index"] - 1) for s in metrics["stages"]}
    metrics["comparison"] = comparing.comparison_record(timed, labels, inputs,
                                                        [f.relative_to(out) for f in files], window * len(files))
    final_rows = metrics["comparison"]["stages"][str(kept)]["vs_baseline"] if kept else \
        {str(t.batch_size): t.compare(0, 0).to_dict() for t in timed}
    metrics["final"]["speedup_vs_baseline"] = {comparing.RUNTIME: final_rows}
    metrics["flags"] = comparing.flags(metrics)
    metrics["targets"] = check_targets(metrics, recipe.targets)
    metrics["finished"] = _now()
    metrics["headline"] = {"text": summary_line(metrics), "speedup_vs_baseline": final_rows,
                           "accuracy_delta": metrics["final"]["accuracy"] - metrics["baseline"]["accuracy"],
                           "size": size_headline(metrics), "shipped_stage": kept}
    for flag in metrics["flags"]:
        log(f"note: {flag}")
    save_metrics()
    write_report(out)
