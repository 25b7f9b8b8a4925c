"""The pipeline's speed comparisons: one interleaved timing of every model feeds every ratio.

At the end of a run the baseline and every stage's deployed ONNX model are timed in turns
on ONNX Runtime (``interleave_latency``); the stage table's speed-ups, the headline and the
"slower than its input" flags are all read off those same rounds. A stage with
``keep: if_faster`` is also timed against its input as soon as it finishes, because the
next stage must know which model to start from.

The keep rule: a stage is dropped when it is measurably slower than its input at batch 1 or
at batch 64, i.e. when every round there found it slower (the min-max spread of the per-round
ratios lies entirely below 1.0x). Within the noise it is kept, since it brings the other
gains (size, MACs) at no measurable cost in speed. The same test flags a slow stage.

Example:
    >>> row = {"speedup": 0.8, "speedup_min": 0.7, "speedup_max": 0.9, "rounds": 12}
    >>> keep_decision({"1": row, "64": row | {"speedup_min": 0.9, "speedup_max": 1.1}})["kept"]
    False
"""

from __future__ import annotations

from pathlib import Path

from ..profiling.latency import describe_speedup, speedup_verdict

RUNTIME = "onnxruntime"


def batch_keys(metrics: dict) -> list[str]:
    """The run's two batch sizes as metrics.json keys: ``["1", "64"]`` for images, ``["1", "32"]`` for text."""
    return list(metrics.get("task", {}).get("batch_sizes", ["1", "64"]))


def slower_batches(rows: dict) -> list[str]:
    """The batch sizes (``"1"``, ``"64"`` ...) at which every round found the candidate slower."""
    return [bs for bs in sorted(rows, key=int) if speedup_verdict(rows[bs]) == "slower"]


def keep_decision(rows: dict) -> dict:
    """``keep: if_faster``'s verdict on a stage from its comparison rows against its input (by batch)."""
    slower = slower_batches(rows)
    decision = {"rule": f"drop if measurably slower than its input on onnxruntime at batch "
                        f"{' or '.join(sorted(rows, key=int))} (every round slower)", "vs_input": rows, "kept": not slower}
    if slower:
        decision["reason"] = "slower than its input: " + "; ".join(
            f"batch {bs} {describe_speedup(rows[bs])}" for bs in slower)
    return decision


def comparison_record(timed: list, labels: list[str], inputs: dict[int, int], files: list[Path],
                      window_seconds: float) -> dict:
    """metrics.json's ``comparison``: every stage against the baseline and against its input.

    ``timed`` are ``InterleavedTimes`` of models ``[baseline, stage 1, ...]`` (one per batch
    size), ``inputs`` maps a stage index to the index of the model it started from.
    """
    stages = {}
    for index, source in inputs.items():
        vs_base = {str(t.batch_size): t.compare(0, index).to_dict() for t in timed}
        vs_input = {str(t.batch_size): t.compare(source, index).to_dict() for t in timed}
        stages[str(index)] = {"input": source, "vs_baseline": vs_base, "vs_input": vs_input,
                              "slower_than_input": slower_batches(vs_input)}
    return {"runtime": RUNTIME, "method": "interleaved: every model timed in turns in each round, ratios per round",
            "models": labels, "files": [str(f) for f in files], "window_seconds_per_batch": window_seconds,
            "threads": timed[0].threads if timed else None, "stages": stages}


def flags(metrics: dict) -> list[str]:
    """Sentences about stages a reader must not miss: dropped ones, and ones slower than their input."""
    out = []
    labels = metrics.get("comparison", {}).get("models", [])
    for stage in metrics.get("stages", []):
        name = f"stage {stage['index']} ({stage['name']})"
        if stage.get("kept") is False:
            out.append(f"{name} was dropped (keep: if_faster): {stage['keep_check']['reason']}; "
                       f"later stages continued from its input")
            continue
        entry = metrics.get("comparison", {}).get("stages", {}).get(str(stage["index"]))
        if entry and entry["slower_than_input"]:
            source = labels[entry["input"]] if entry["input"] < len(labels) else f"model {entry['input']}"
            out.append(f"{name} is slower than its input ({source}) on onnxruntime: " + "; ".join(
                f"batch {bs} {describe_speedup(entry['vs_input'][bs])}" for bs in entry["slower_than_input"])
                + ("; its own check when it finished (other rounds) found no measurable slowdown, so it was kept"
                   if stage.get("keep") == "if_faster" else
                   "; float16 is for GPU deployment and brings no speed-up on this CPU runtime"
                   if stage.get("precision") == "float16" else
                   "; add `keep: if_faster` to the stage to ship the faster model"))
    return out
