"""The compression report: one self-contained HTML page (plots inlined) built from metrics.json."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from ..core import DeepslimError
from ..export.files import write_atomic

REPORT = "report.html"


def summary_line(metrics: dict) -> str:
    """E.g. '3.8x faster on onnxruntime at batch 1, -0.3 points accuracy, 7.1x smaller'."""
    base, final = metrics["baseline"], metrics["final"]
    speed, speed64 = speedups(metrics)
    delta = final["accuracy"] - base["accuracy"]
    smaller = base["size_bytes"] / final["size_bytes"]
    return (f"{speed:.1f}x faster on onnxruntime at batch 1 ({speed64:.1f}x at batch 64), "
            f"{delta:+.2f} points accuracy, {smaller:.1f}x smaller")


def speedups(metrics: dict) -> tuple[float, float]:
    """Final vs baseline on ONNX Runtime at batch 1 and 64: the interleaved comparison when the
    run made one, else the ratio of the separately timed medians."""
    interleaved = metrics["final"].get("speedup_vs_baseline", {}).get("onnxruntime", {})
    if "1" in interleaved and "64" in interleaved:
        return interleaved["1"]["speedup"], interleaved["64"]["speedup"]
    base, final = metrics["baseline"]["latency_ms"]["onnxruntime"], metrics["final"]["latency_ms"]["onnxruntime"]
    return base["1"] / final["1"], base["64"] / final["64"]


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _points(metrics: dict) -> list[tuple[str, dict]]:
    return [("baseline", metrics["baseline"])] + [(f"{s['index']}. {s['name']}", s) for s in metrics["stages"]]


def _scatter(metrics: dict, x_of, xlabel: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    points = _points(metrics)
    xs = [x_of(m) for _, m in points]
    ys = [m["accuracy"] for _, m in points]
    ax.plot(xs, ys, "-", color="#bbbbbb", zorder=1)
    for (label, _), x, y in zip(points, xs, ys):
        ax.scatter([x], [y], s=60, zorder=2, color="#444444" if label == "baseline" else "#1f77b4")
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("full-test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
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


def _row(label: str, m: dict, base: dict) -> str:
    lat = m["latency_ms"]
    torch_lat = lat.get("torch", {})
    cells = [label, f"{m['accuracy']:.2f}", f"{m['accuracy'] - base['accuracy']:+.2f}", f"{m['macs'] / 1e6:.2f}",
             f"{m['params']:,}", f"{m['size_bytes'] / 1e6:.3f}",
             f"{lat['onnxruntime']['1']:.3f}", f"{lat['onnxruntime']['64']:.2f}",
             f"{torch_lat['1']:.3f}" if "1" in torch_lat else "n/a",
             f"{torch_lat['64']:.2f}" if "64" in torch_lat else "n/a",
             m.get("runtime", ""), f"{m.get('seconds', '')}"]
    return "<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>"


def render_report(metrics: dict) -> str:
    """The report page for ``metrics`` (a metrics.json dict) as HTML text."""
    base = metrics["baseline"]
    rows = [_row("baseline", base, base)] + [_row(f"{s['index']}. {s['name']} ({s['technique']})", s, base)
                                             for s in metrics["stages"]]
    env = "".join(f"<tr><td>{_cell(k)}</td><td>{_cell(v)}</td></tr>" for k, v in metrics.get("environment", {}).items())
    headers = ["stage", "accuracy %", "vs baseline", "MACs (M)", "params", "ONNX MB", "ORT b1 ms", "ORT b64 ms",
               "torch b1 ms", "torch b64 ms", "runtime", "seconds"]
    plots = [_scatter(metrics, lambda m: m["latency_ms"]["onnxruntime"]["1"], "onnxruntime latency, batch 1 (ms)",
                      "Accuracy vs latency"),
             _scatter(metrics, lambda m: m["size_bytes"] / 1e6, "model size (ONNX, MB)", "Accuracy vs size"),
             _layer_chart(metrics)]
    images = "".join(f'<img alt="plot" src="{p}">' for p in plots)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deepslim report: {_cell(metrics.get('recipe', ''))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.summary {{ font-size: 20px; font-weight: bold; margin: 0.5em 0 1em; }}
img {{ max-width: 48%; margin: 0.5em 1% 0.5em 0; vertical-align: top; }}
.note {{ color: #666; font-size: 12px; }}
</style></head><body>
<h1>deepslim compression report</h1>
<p>Recipe <b>{_cell(metrics.get('recipe', ''))}</b> on <b>{_cell(metrics.get('source', ''))}</b>.
{_cell(metrics.get('description', ''))}</p>
<p class="summary" id="summary">{_cell(summary_line(metrics))}</p>
<h2>Stages</h2>
<table><tr>{''.join(f'<th>{h}</th>' for h in headers)}</tr>{''.join(rows)}</table>
<p class="note">Accuracy on the full test split. Latency: median ms per batch; int8 stages run as the deployed
int8 ONNX model on ONNX Runtime (their PyTorch twin only simulates integers, so it is not timed).
Size: the stage's ONNX file. The summary's speed-ups time the final and baseline ONNX models
interleaved (median of per-round ratios), the robust comparison on a shared machine.</p>
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
