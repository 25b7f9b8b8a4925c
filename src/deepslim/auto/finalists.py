"""The full-fidelity end of `deepslim auto`: finalists fine-tuned in full, then timed together, in turns.

Each finalist is its plan's full recipe run by `deepslim compress` into ``OUT/finalists/trial-NNNN``
(resumable like any compress run; scored on the whole test split); a near miss run again with a longer
fine-tune (``FinalistPicker.extend``) goes to ``OUT/finalists/trial-NNNN-epE``. Latencies from the search may
have collided (several workers on one machine); the finalists' deployed files and the input
model's are therefore timed again here, in one interleaved comparison, alone.

Example:
    >>> run_finalists(ctx, picked)             # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..core import DeepslimError, log
from ..core.errors import Interrupted
from ..export.files import write_json_atomic
from ..pipeline import compress, parse_recipe
from ..pipeline.publish import deployed_onnx
from ..pipeline.tasks import task_for
from ..profiling.latency import interleave_latency
from .engine import proxy_epochs
from .picking import is_extension, pick_text
from .space import recipe_text, space_epochs
from .target import format_seconds

FINALISTS = "finalists"


def full_recipe(space, plan: dict, trial: int, max_drop: float, train_samples: int) -> str:
    """The plan's recipe at full fidelity (batches no larger than the training split), with its accuracy bound."""
    text = recipe_text(space, plan, max_batch=train_samples, name=f"auto-trial-{trial}")
    return text + f"targets: {{max_accuracy_drop: {max_drop}}}\n"


def estimate_full_seconds(row: dict, n_train: int, proxy_images: int, proxy_epochs: int, overhead: float) -> float:
    """A full run's time, scaled from the trial's: training grows with samples x epochs; measuring stays."""
    training = max(row.get("seconds") or 0.0, overhead) - overhead
    scale = (n_train / max(1, min(proxy_images, n_train))) * (int(row["plan"]["epochs"]) / max(1, proxy_epochs))
    return training * scale + 4 * overhead


def run_finalist(model, data, space, row: dict, folder: Path, *, device, max_drop: float,
                 latency_seconds: float) -> dict:
    """One finalist's full run into ``folder`` (or its finished result); returns its compress metrics."""
    state = folder / "state.json"
    if state.is_file() and json.loads(state.read_text()).get("done"):
        return json.loads((folder / "metrics.json").read_text())
    recipe = parse_recipe(full_recipe(space, row["plan"], row["trial"], max_drop, len(data.train)), origin=f"finalist {row['trial']}")
    log(f"finalist trial {row['trial']}: {space.describe(row['plan'])} (full fine-tune, scored on the test split)")
    return compress(model, data, recipe, folder, device=device, latency_seconds=latency_seconds)


def finalist_folder(trial: int, plan: dict, extension: bool) -> str:
    """A finalist's folder under OUT; an extension (the same trial, more epochs) gets its own."""
    return f"{FINALISTS}/trial-{trial:04d}" + (f"-ep{plan['epochs']}" if extension else "")


def time_together(out: Path, baseline_onnx: Path, finished: list[dict], cases: list, seconds: float) -> dict:
    """Speed-ups of every finished finalist over the input model, all timed in one interleaved run per
    ``(batch, inputs)`` case; ``{folder: {batch: comparison}}``."""
    files = [baseline_onnx] + [deployed_onnx(out / r["folder"]) for r in finished]
    log(f"timing the input model and {len(finished)} finalist(s) in turns on ONNX Runtime "
        f"(about {len(files) * seconds * len(cases):.0f} s)")
    result: dict = {r["folder"]: {} for r in finished}
    for batch, inputs in cases:
        (times,) = interleave_latency(files, inputs, batch_sizes=(batch,), runtimes=("onnxruntime",),
                                      min_seconds=seconds)
        for i, r in enumerate(finished, start=1):
            result[r["folder"]][str(batch)] = times.compare(0, i).to_dict()
    return result


def full_drop(metrics: dict) -> float:
    """Points a full run lost on the test split (its compress metrics: baseline less final)."""
    return round(metrics["baseline"]["accuracy"] - metrics["final"]["accuracy"], 4)


def measured_figures(metrics: dict, timed: dict, batch: int) -> dict:
    """A finalist's figures at full fidelity: test score, drop, and the speed-up at the search's batch."""
    final, base = metrics["final"], metrics["baseline"]
    row = timed[str(batch)]
    onnx_bytes = final["size_bytes"]
    return {"accuracy": final["accuracy"], "baseline_accuracy": base["accuracy"],
            "drop": full_drop(metrics), "speedup": row["speedup"],
            "speedup_range": [row["speedup_min"], row["speedup_max"]], "ort_latency_ms": row["candidate_ms"],
            "baseline_ms": row["baseline_ms"], "macs": final["macs"], "size_mb": onnx_bytes / 1e6,
            "precision": final.get("precision", "float32"), "speedups": {b: r["speedup"] for b, r in timed.items()},
            "run_seconds": metrics.get("run_seconds")}


def run_finalists(model, data, space, picker, out, config, device, deadline, state, proxy, spend, resume_hint,
                  result) -> list[dict]:
    """Full runs of up to ``config.top_k`` plans, each chosen by ``picker`` (a ``FinalistPicker``) after the
    runs before it, then of near misses with a longer fine-tune (``picker.extend``) and of the plan to publish
    with a longer one (``picker.polish``), while the budget lasts
    (a run is skipped if its estimate exceeds what is left; a failing one is recorded); then all finished
    ones timed together with the input model."""
    finalists, finished = [], []
    overhead = state["baseline_proxy"]["seconds"]
    # the input model's timed epoch bounds any plan's (a pruned model trains faster); a trial's own time can
    # be inflated by workers sharing the machine on one thread each, so the smaller estimate is taken
    per_sample_epoch = state["train_estimate_s"] / max(1, min(config.proxy_images, len(data.train))) / max(
        1, round(min(space_epochs(space)) * config.proxy_epoch_scale))
    # up to top_k plans; extensions (longer fine-tunes of near misses, each finalist once) come on top of them
    while (row := picker.next_run(finalists, sum(not is_extension(f) for f in finalists) < config.top_k)) is not None:
        pick = row.pop("pick")
        extension = "extends" in pick
        epochs = int(row["plan"]["epochs"])
        bound = per_sample_epoch * len(data.train) * epochs + 4 * overhead  # at the input model's epoch time
        if extension:  # a finished finalist's plan with a longer fine-tune: its own run, scaled
            extended = next(f for f in finished if f["trial"] == pick["extends"] and not is_extension(f))
            proxy_row = extended["proxy"]
            run_s = extended["metrics"].get("run_seconds") or extended["estimate_s"]
            estimate = min(run_s * epochs / int(extended["plan"]["epochs"]), bound)  # its measuring counted twice
        else:
            proxy_row = row
            estimate = min(estimate_full_seconds(row, len(data.train), config.proxy_images,
                                                 proxy_epochs(row["plan"], config.proxy_epoch_scale), overhead), bound)
        entry = {"trial": row["trial"], "plan": row["plan"], "description": space.describe(row["plan"]),
                 "proxy": proxy_row, "pick": pick, "estimate_s": round(estimate, 1),
                 "folder": finalist_folder(row["trial"], row["plan"], extension)}
        finalists.append(entry)
        plans = sum(not is_extension(f) for f in finalists)
        count = f"finalist {len(finalists)}" + ("" if extension else f" (plan {plans} of at most {config.top_k})")
        log(f"{count}: trial {row['trial']}, {pick_text(pick)}")
        left = deadline - time.time()
        if estimate > left and not (out / entry["folder"] / "state.json").is_file():
            entry["skipped"] = f"its full run would take about {format_seconds(estimate)}; {format_seconds(left)} left"
            log(f"finalist trial {row['trial']} skipped: {entry['skipped']}")
            continue
        try:
            metrics = run_finalist(model, data, space, row, out / entry["folder"], device=device,
                                   max_drop=config.max_drop, latency_seconds=config.final_latency_seconds)
        except (KeyboardInterrupt, Interrupted):  # compress turns Ctrl-C into Interrupted
            spend()
            result.update(status="interrupted", finalists=finalists)
            write_json_atomic(out / "metrics.json", result)
            raise Interrupted("interrupted during a finalist's full run; finished trials and stages are kept",
                              hint=resume_hint) from None
        except DeepslimError as exc:  # one plan's full run failing does not end the others
            entry["error"] = f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")
            log(f"finalist trial {row['trial']} failed: {entry['error']}")
            continue
        spend()
        entry["metrics"] = {k: metrics[k] for k in ("baseline", "final", "headline", "run_seconds") if k in metrics}
        entry["full_drop"] = full_drop(metrics)
        finished.append(entry)
    if finished:
        cases = dict(_full_task(proxy, data).latency_cases())
        cases.setdefault(config.batch, next(iter(cases.values())))  # the search's batch, if the task's differ
        baseline_onnx = out / entry_dir(finished[0]) / "stages" / "00-baseline" / "model.onnx"
        timed = time_together(out, baseline_onnx, finished, sorted(cases.items()), config.final_latency_seconds * 10)
        for entry in finished:
            entry["measured"] = measured_figures(entry["metrics"], timed[entry["folder"]], config.batch)
    return finalists


def entry_dir(entry: dict) -> Path:
    return Path(entry["folder"])


def _full_task(proxy, data):
    return task_for(data, proxy.model, proxy.device)
