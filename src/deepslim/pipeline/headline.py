"""The run's headline (speed-up, accuracy, size) and its targets, computed from metrics.json alone.

The CLI summary, the report and benchmarks/pipeline_flagship.py all call these, so they
cannot disagree. Speed-ups are the final stage's row of the run's one interleaved comparison
(the same numbers the stage table shows), worded by ``describe_speedup``: with the spread
and the number of rounds, and "no measurable change" when the spread includes 1.0x.

Size: the deployed form. The int8 ONNX file for a quantized model; for a sparse float model
(magnitude / N:M pruning) the compact weights file, where zeros cost one bit, because its
ONNX file is as large as the dense one; the ONNX file otherwise.

Example:
    >>> row = {"speedup": 4.71, "speedup_min": 2.43, "speedup_max": 5.47, "rounds": 64}
    >>> m = {"baseline": {"accuracy": 94.64, "size_bytes": 4_914_284},
    ...      "final": {"accuracy": 94.33, "size_bytes": 351_353, "int8": True,
    ...                "speedup_vs_baseline": {"onnxruntime": {"1": row, "64": row}}}}
    >>> for part in summary_line(m).split("; "):
    ...     print(part)
    onnxruntime batch 1: 4.71x faster [2.43-5.47], 64 rounds
    batch 64: 4.71x faster [2.43-5.47], 64 rounds
    -0.31 points accuracy
    14.0x smaller (ONNX file, 4.91 MB -> 351 KB)
"""

from __future__ import annotations

from ..profiling.latency import describe_speedup
from .compare import batch_keys
from .measure import ships_onnx_file

# A float model whose non-zero parameters are below this fraction (at least 10% zeros) is sized by its
# compact weights file.
SPARSE_FRACTION = 0.9


def final_rows(metrics: dict) -> dict | None:
    """The final model's interleaved comparison rows against the baseline, by batch (``"1"``, ``"64"``)."""
    rows = metrics.get("final", {}).get("speedup_vs_baseline", {}).get("onnxruntime", {})
    return rows if all(b in rows for b in batch_keys(metrics)) else None


def speedups(metrics: dict) -> tuple[float, float]:
    """Median speed-ups of the final model on ONNX Runtime at batch 1 and the run's large batch (64 for
    images, 32 for text): the headline's.

    Runs recorded before interleaved comparisons fall back to the ratio of separately timed medians.
    """
    one, large = batch_keys(metrics)
    rows = final_rows(metrics)
    if rows:
        return rows[one]["speedup"], rows[large]["speedup"]
    base, final = metrics["baseline"]["latency_ms"]["onnxruntime"], metrics["final"]["latency_ms"]["onnxruntime"]
    return base[one] / final[one], base[large] / final[large]


def _bytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def size_headline(metrics: dict) -> dict:
    """Which size the headline compares (``basis``: "onnx" or "weights"), both byte counts and the ratio."""
    base, final = metrics["baseline"], metrics["final"]
    params = final.get("params") or 0
    sparse = (not ships_onnx_file(final) and params and final.get("nonzero_params", params) < SPARSE_FRACTION * params
              and base.get("weights_bytes") and final.get("weights_bytes"))
    if sparse:
        pair, basis, label = (base["weights_bytes"], final["weights_bytes"]), "weights", "compact weights file"
    else:
        pair, basis, label = (base["size_bytes"], final["size_bytes"]), "onnx", "ONNX file"
    return {"basis": basis, "label": label, "baseline_bytes": pair[0], "final_bytes": pair[1],
            "smaller": pair[0] / pair[1]}


def _size_phrase(size: dict) -> str:
    sizes = f"{size['label']}, {_bytes(size['baseline_bytes'])} -> {_bytes(size['final_bytes'])}"
    if 0.95 <= size["smaller"] <= 1.05:
        return f"about the same size ({sizes})"
    if size["smaller"] < 1:
        return f"{1 / size['smaller']:.1f}x larger ({sizes})"
    return f"{size['smaller']:.1f}x smaller ({sizes})"


def summary_line(metrics: dict) -> str:
    """The headline: speed-ups with spread and rounds, accuracy change, size (and which file)."""
    one, large = batch_keys(metrics)
    rows = final_rows(metrics)
    if rows:
        speed = f"onnxruntime batch 1: {describe_speedup(rows[one])}; batch {large}: {describe_speedup(rows[large])}"
    else:
        s1, s_large = speedups(metrics)
        speed = (f"onnxruntime: {s1:.2f}x lower median latency at batch 1, {s_large:.2f}x at batch {large} "
                 "(timed separately, spread not measured)")
    delta = metrics["final"]["accuracy"] - metrics["baseline"]["accuracy"]
    metric = metrics.get("task", {}).get("metric", "accuracy")
    return f"{speed}; {delta:+.2f} points {metric}; {_size_phrase(size_headline(metrics))}"


def check_targets(metrics: dict, targets: dict) -> dict:
    """Each recipe target with the run's value and whether it was met (speed-ups: the median)."""
    s1, s_large = speedups(metrics)
    values = {"max_accuracy_drop": metrics["baseline"]["accuracy"] - metrics["final"]["accuracy"],
              "min_speedup_b1": s1, f"min_speedup_b{batch_keys(metrics)[1]}": s_large,
              "min_smaller": size_headline(metrics)["smaller"]}
    return {key: {"target": target, "value": values[key],
                  "met": values[key] <= target if key.startswith("max") else values[key] >= target}
            for key, target in targets.items()}


def targets_line(results: dict) -> str:
    """E.g. 'accuracy drop 0.31 <= 0.5: met; batch-1 speed-up 4.71x >= 4: met'."""
    words = {"max_accuracy_drop": ("accuracy drop", "{:.2f} <= {:g}"),
             "min_speedup_b1": ("batch-1 speed-up", "{:.2f}x >= {:g}"),
             "min_speedup_b64": ("batch-64 speed-up", "{:.2f}x >= {:g}"),
             "min_speedup_b32": ("batch-32 speed-up", "{:.2f}x >= {:g}"),
             "min_smaller": ("size reduction", "{:.1f}x >= {:g}")}
    parts = [f"{words[k][0]} {words[k][1].format(r['value'], r['target'])}: {'met' if r['met'] else 'NOT met'}"
             for k, r in results.items()]
    return "; ".join(parts) if parts else "none set in the recipe"
