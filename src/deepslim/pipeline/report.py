"""The compression report: one self-contained HTML page (plots inlined) built from metrics.json.

It shows the headline (``headline.summary_line``), how the run was made (date, command, run
time, threads, data and subset), the recipe's targets and whether they were met, flags for
stages that were dropped or are slower than their input, and a stage table whose speed-ups
come from the same interleaved comparison as the headline.

Example:
    >>> write_report("runs/demo")                      # doctest: +SKIP
    PosixPath('runs/demo/report.html')
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from ..core import DeepslimError
from ..export.files import write_atomic
from ..profiling.chart import separate_labels
from ..profiling.latency import describe_speedup
from .compare import batch_keys
from .headline import size_headline, speedups, summary_line, targets_line  # noqa: F401 (speedups: re-exported)
from .measure import ships_onnx_file

REPORT = "report.html"
MIN_ACCURACY_SPAN = 5.0  # points: the accuracy axis never zooms in further than this


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _points(metrics: dict) -> list[tuple[str, dict]]:
    return [("baseline", metrics["baseline"])] + [(f"{s['index']}. {s['name']}", s) for s in metrics["stages"]]


def axis_limits(xs: list[float], ys: list[float]) -> tuple[tuple[float, float], tuple[float, float]]:
    """Plot ranges that do not magnify noise: x from zero (latency and size are read as ratios),
    accuracy (y) at least ``MIN_ACCURACY_SPAN`` points tall so that 0.3 points do not fill the plot.

    Example:
        >>> axis_limits([0.5, 0.1], [94.64, 94.33])
        ((0, 0.575), (91.485, 97.485))
    """
    low, high = min(ys), max(ys)
    pad = max(0.0, MIN_ACCURACY_SPAN - (high - low)) / 2 + 0.5
    top = max(xs) * 1.15 if max(xs) > 0 else 1
    return (0, top), (max(0.0, low - pad), min(100.0, high + pad))


def _scatter(metrics: dict, x_of, xlabel: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    points = _points(metrics)
    xs = [x_of(m) for _, m in points]
    ys = [m["accuracy"] for _, m in points]
    ax.plot(xs, ys, "-", color="#bbbbbb", zorder=1)
    labels = []
    for (label, _), x, y in zip(points, xs, ys):
        ax.scatter([x], [y], s=60, zorder=2, color="#444444" if label == "baseline" else "#1f77b4")
        labels.append(ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8,
                                  arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5}))
    xlim, ylim = axis_limits(xs, ys)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("full-test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()  # before placing labels: a later layout change would move the points under them
    separate_labels(fig, ax, labels)  # stages with near-equal accuracy and latency would print on each other
    return _png(fig)


def _layer_chart(metrics: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = metrics["baseline"].get("layer_macs", {})
    after = metrics["final"].get("layer_macs", {})
    names = list(before)
    # A factorized layer becomes "name.0", "name.1"...: add its pieces back up under its name.
    after_by_name = [sum(v for k, v in after.items() if k == n or k.startswith(n + ".")) for n in names]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(names) + 1)))
    y = range(len(names))
    ax.barh([i + 0.2 for i in y], [before[n] / 1e6 for n in names], height=0.4, label="baseline", color="#999999")
    ax.barh([i - 0.2 for i in y], [a / 1e6 for a in after_by_name], height=0.4, label="final", color="#1f77b4")
    ax.set_yticks(list(y))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("MACs per image (millions)")
    ax.set_title("Per-layer MACs, before and after")
    ax.legend()
    return _png(fig)


def _cell(value) -> str:
    return html.escape(str(value))


def _retrieval_note(metrics: dict) -> str:
    """A retrieval run's other scores (its table's score column is recall@1), one line per model."""
    models = [("baseline", metrics["baseline"])] + [(f"{m['index']}. {m['name']}", m) for m in metrics["stages"]]
    if not all("retrieval" in m for _, m in models):
        return ""
    items = "".join(f"<li>{html.escape(label)}: recall@1 {m['retrieval']['recall@1']:.2f}%, recall@10 "
                    f"{m['retrieval']['recall@10']:.2f}%, MRR {m['retrieval']['mrr']:.4f} "
                    f"({m['retrieval']['n']:,} test pairs)</li>" for label, m in models)
    return (f"<p class=\"note\">Retrieval: each test query ranked against every test document.</p>"
            f"<ul>{items}</ul>\n")


def _speed_cells(metrics: dict, index: int) -> list[str]:
    """Batch-1 and batch-64 speed-ups over the baseline from the run's one interleaved comparison."""
    if index == 0:
        return ["1x (reference)", "1x (reference)"]
    entry = metrics.get("comparison", {}).get("stages", {}).get(str(index))
    rows = entry["vs_baseline"] if entry else None
    if rows is None and index == metrics["final"].get("index"):  # runs recorded before per-stage comparisons
        rows = metrics["final"].get("speedup_vs_baseline", {}).get("onnxruntime")
    return [describe_speedup(rows[bs]) if rows and bs in rows else "not compared" for bs in batch_keys(metrics)]


def _input_cell(metrics: dict, stage: dict) -> str:
    entry = metrics.get("comparison", {}).get("stages", {}).get(str(stage["index"]))
    if not entry:
        return "not compared"
    return "; ".join(f"b{bs} {describe_speedup(entry['vs_input'][bs])}" for bs in batch_keys(metrics))


def _shipped_cell(metrics: dict, stage: dict) -> str:
    if stage.get("kept") is False:
        return "dropped: " + stage["keep_check"]["reason"]
    return f"kept (keep: {stage.get('keep', 'always')})"


def _row(label: str, m: dict, base: dict, extra: list[str], large: str, flagged: bool = False) -> str:
    lat = m["latency_ms"]
    torch_lat = lat.get("torch", {})
    weights = m.get("weights_bytes")
    cells = [label, f"{m['accuracy']:.2f}", f"{m['accuracy'] - base['accuracy']:+.2f}", f"{m['macs'] / 1e6:.2f}",
             f"{m['params']:,}", f"{m['size_bytes'] / 1e6:.3f}",
             f"{weights / 1e6:.3f}" if weights and not m.get("int8") else "n/a",  # int8: the float twin's file
             f"{lat['onnxruntime']['1']:.3f}", f"{lat['onnxruntime'][large]:.2f}",
             f"{torch_lat['1']:.3f}" if "1" in torch_lat else "n/a",
             f"{torch_lat[large]:.2f}" if large in torch_lat else "n/a", *extra,
             m.get("runtime", ""), f"{m.get('seconds', '')}"]
    style = ' class="flagged"' if flagged else ""
    return f"<tr{style}>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>"


def _facts(metrics: dict) -> str:
    """How the run was made: date, command, run time, threads, data."""
    data = metrics.get("data", {})
    subset = f"--subset {data['subset']}" if data.get("subset") else "none (the whole training split)"
    size = size_headline(metrics)
    facts = [("date", f"{metrics.get('started', 'not recorded')} to {metrics.get('finished', 'not recorded')}"),
             ("command", metrics.get("command") or "not recorded"),
             ("run time", f"{metrics['run_seconds'] / 60:.1f} min" if "run_seconds" in metrics else "not recorded"),
             ("threads", metrics.get("threads", metrics.get("environment", {}).get("torch_threads", "not recorded"))),
             ("data", f"{data.get('name', '?')}: fine-tunes on {data.get('train_images', '?'):,} training "
                      f"{data.get('unit', 'image')}s, "
                      f"{data.get('val_images', '?'):,} validation, evaluated on {data.get('test_images', '?'):,} "
                      f"test {data.get('unit', 'image')}s" if data else "not recorded"),
             ("subset", subset if data else "not recorded"),
             ("headline size", f"{size['label']} ({size['baseline_bytes']:,} -> {size['final_bytes']:,} bytes)")]
    return "".join(f"<tr><td>{_cell(k)}</td><td>{_cell(v)}</td></tr>" for k, v in facts)


def _targets(metrics: dict) -> str:
    results = metrics.get("targets") or {}
    if not results:
        return "<p>No targets set in the recipe (add e.g. <code>targets: {max_accuracy_drop: 0.5, " \
               "min_speedup_b1: 4}</code>).</p>"
    rows = "".join(f"<tr><td>{_cell(k)}</td><td>{r['target']:g}</td><td>{r['value']:.2f}</td>"
                   f"<td>{'met' if r['met'] else 'NOT met'}</td></tr>" for k, r in results.items())
    return (f'<p id="targets">{_cell(targets_line(results))}</p><table><tr><th>target</th><th>limit</th>'
            f"<th>this run</th><th>met</th></tr>{rows}</table>")


def _flags(metrics: dict) -> str:
    if "flags" not in metrics:
        return ""
    if not metrics["flags"]:
        return '<p id="flags">No stage is measurably slower than its input.</p>'
    items = "".join(f"<li>{_cell(f)}</li>" for f in metrics["flags"])
    return f'<ul id="flags" class="flags">{items}</ul>'


def render_report(metrics: dict) -> str:
    """The report page for ``metrics`` (a metrics.json dict) as HTML text."""
    base = metrics["baseline"]
    slow = {int(i) for i, e in metrics.get("comparison", {}).get("stages", {}).items() if e["slower_than_input"]}
    large = batch_keys(metrics)[1]
    rows = [_row("baseline", base, base, [*_speed_cells(metrics, 0), "", "input"], large)]
    rows += [_row(f"{s['index']}. {s['name']} ({s['technique']})", s, base,
                  [*_speed_cells(metrics, s["index"]), _input_cell(metrics, s), _shipped_cell(metrics, s)], large,
                  flagged=s["index"] in slow or s.get("kept") is False) for s in metrics["stages"]]
    env = "".join(f"<tr><td>{_cell(k)}</td><td>{_cell(v)}</td></tr>" for k, v in metrics.get("environment", {}).items())
    headers = ["stage", f"{metrics.get('task', {}).get('metric', 'accuracy')} %", "vs baseline", "MACs (M)", "params",
               "ONNX MB", "weights file MB", "ORT b1 ms", f"ORT b{large} ms", "torch b1 ms", f"torch b{large} ms",
               "ORT b1 vs baseline", f"ORT b{large} vs baseline",
               "ORT vs its input", "kept", "runtime", "seconds"]
    size = size_headline(metrics)

    def size_of(m):
        compact = size["basis"] == "weights" and not ships_onnx_file(m)  # else the ONNX file is what ships
        return (m.get("weights_bytes") if compact else m["size_bytes"]) or m["size_bytes"]

    plots = [_scatter(metrics, lambda m: m["latency_ms"]["onnxruntime"]["1"], "onnxruntime latency, batch 1 (ms)",
                      "Accuracy vs latency"),
             _scatter(metrics, lambda m: size_of(m) / 1e6, f"model size ({size['label']}, MB)", "Accuracy vs size"),
             _layer_chart(metrics)]
    images = "".join(f'<img alt="plot" src="{p}">' for p in plots)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deepslim report: {_cell(metrics.get('recipe', ''))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
tr.flagged td {{ background: #fff1e6; }}
#run td {{ text-align: left; }}
.flags li {{ color: #a04000; }}
.summary {{ font-size: 18px; font-weight: bold; margin: 0.5em 0 1em; }}
img {{ max-width: 48%; margin: 0.5em 1% 0.5em 0; vertical-align: top; }}
.note {{ color: #666; font-size: 12px; }}
</style></head><body>
<h1>deepslim compression report</h1>
<p>Recipe <b>{_cell(metrics.get('recipe', ''))}</b> on <b>{_cell(metrics.get('source', ''))}</b>.
{_cell(metrics.get('description', ''))}</p>
<p class="summary" id="summary">{_cell(summary_line(metrics))}</p>
{_flags(metrics)}
<h2>Targets</h2>
{_targets(metrics)}
<h2>Run</h2>
<table id="run">{_facts(metrics)}</table>
<h2>Stages</h2>
<table><tr>{''.join(f'<th>{h}</th>' for h in headers)}</tr>{''.join(rows)}</table>
{_retrieval_note(metrics)}<p class="note">Accuracy on the full test split. Latency: median ms per batch, each model timed on its own;
int8 and half stages run as the deployed int8 or float16 ONNX model on ONNX Runtime (their PyTorch twin is
not what ships, so it is not timed; the CPU provider computes float16 in float32, so a half stage gains nothing
here). Speed-ups: the baseline and every stage's ONNX model timed in turns, round after round,
on ONNX Runtime; each is the median of per-round ratios with their min-max range and the number of rounds,
"no measurable change" when that range includes 1.0x. The summary's speed-ups are the shipped stage's row.
ONNX MB: the stage's ONNX file; weights file MB: its saved weights, sparse tensors stored compactly (the
headline uses it for sparse float models). A highlighted row is slower than its input or was dropped.</p>
<h2>Plots</h2>
{images}
<h2>Environment</h2>
<table>{env}</table>
<script>
// For automated checks (headless Chromium): how many plots decoded into real images.
window.addEventListener("load", function () {{
  var ok = Array.prototype.filter.call(document.images, function (i) {{ return i.complete && i.naturalWidth > 0; }});
  document.body.setAttribute("data-plots-loaded", String(ok.length));
}});
</script>
</body></html>
"""


def write_report(out: str | Path) -> Path:
    """(Re)build ``out/report.html`` from ``out/metrics.json``."""
    out = Path(out)
    try:
        metrics = json.loads((out / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DeepslimError(f"cannot read {out / 'metrics.json'}: {exc}",
                            hint="point at the --out folder of a finished `deepslim compress` run") from exc
    if "final" not in metrics or not metrics.get("stages"):
        raise DeepslimError(f"{out} holds an unfinished compression run (no final metrics)",
                            hint="rerun `deepslim compress` with the same --out to finish it")
    page = render_report(metrics)
    path = out / REPORT
    write_atomic(path, lambda p: p.write_text(page))
    return path
