"""OUT/report.html of `deepslim auto`: the status, the published plan, the finalists, the proxy Pareto
plot (every trial: accuracy on the validation split against the target's metric) and the trials table.

Example:
    >>> write_auto_report(Path("runs/auto"), json.loads(Path("runs/auto/metrics.json").read_text()))  # doctest: +SKIP
"""

from __future__ import annotations

import html
from pathlib import Path

from ..export.files import write_atomic
from ..pipeline.report import _png
from .picking import pick_text

REPORT = "report.html"


def _c(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return html.escape("" if value is None else str(value))


def pareto_plot(result: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = result["target"].split(">")[0].split("<")[0]
    rows = [r for r in result["trials"] if r.get("accuracy") is not None and r.get("value") is not None
            and r.get("repeat_of") is None]  # a repeated plan is its original's point
    front = {r["trial"] for r in result["pareto"]}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for feasible, colour, label in ((True, "#1f77b4", "within the search's accuracy bound"),
                                    (False, "#bbbbbb", "outside it")):
        pts = [r for r in rows if r["feasible"] == feasible]
        ax.scatter([r["value"] for r in pts], [r["accuracy"] for r in pts], s=22, c=colour, label=label)
    line = sorted((r for r in rows if r["trial"] in front), key=lambda r: r["value"])
    ax.plot([r["value"] for r in line], [r["accuracy"] for r in line], "-", c="#d62728", lw=1, label="Pareto front")
    base = result["baseline_proxy"]
    ax.axhline(base["accuracy"] - result["max_drop"], ls=":", c="#555", lw=1, label=f"-{result['max_drop']} points")
    for r in result.get("finalists", []):
        if r.get("proxy", {}).get("value") is not None:
            ax.annotate(f"#{r['trial']}", (r["proxy"]["value"], r["proxy"]["accuracy"]), fontsize=8)
    ax.set_xlabel(f"{metric} (proxy trial, measured)")
    ax.set_ylabel("accuracy on the validation split (%)" if result.get("task") != "retrieval" else "recall@1 (validation)")
    ax.set_title("Trials: proxy accuracy vs " + metric)
    ax.legend(fontsize=7)
    return _png(fig)


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_c(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_auto_report(result: dict) -> str:
    pub = result.get("published") or {}
    headline = (f"status: {result['status']} (target {result['target']}, at most {result['max_drop']} points lost)")
    published = (f"published trial {pub['trial']} ({pub['kind']}, {pub['fidelity']} fidelity): {pub['description']}; "
                 f"{pub['accuracy']:.2f} ({-pub['drop']:+.2f} points) on the test split, {pub['speedup']:.2f}x at batch "
                 f"{result['batch']}" if pub else "nothing published: no trial finished")
    fin_rows = [[f["trial"], f["description"], pick_text(f.get("pick")),
                 f.get("skipped") or f.get("error") or "",
                 f.get("measured", {}).get("accuracy"), f.get("measured", {}).get("drop"),
                 f.get("measured", {}).get("speedup"), f.get("measured", {}).get("ort_latency_ms"),
                 f.get("measured", {}).get("macs"), f.get("measured", {}).get("size_mb")]
                for f in result.get("finalists", [])]
    trial_rows = [[r["trial"], r["state"], r["description"], r.get("accuracy"), r.get("drop"), r.get("speedup"),
                   r.get("ort_latency_ms"), r.get("macs"), r.get("size_mb"), "yes" if r["feasible"] else "",
                   r.get("repeat_of") if r.get("repeat_of") is not None else "", r.get("seconds")]
                  for r in result["trials"]]
    plot = pareto_plot(result) if any(r.get("accuracy") is not None for r in result["trials"]) else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>deepslim auto: {_c(result['target'])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:nth-child(-n+3), th:nth-child(-n+3) {{ text-align: left; }}
.summary {{ font-size: 18px; font-weight: bold; }}
.note {{ color: #666; font-size: 12px; }}
</style></head><body>
<h1>deepslim auto report</h1>
<p class="summary" id="status">{_c(headline)}</p>
<p id="published">{_c(published)}</p>
<p>Source <b>{_c(result.get('source'))}</b>; storage {_c(result['storage'])}; time spent {_c(result.get('spent_s'))} s of
{_c(result['budget_s'])} s. Resume: {_c(result['resume'])}.</p>
<h2>Finalists (full fine-tune, test split; timed together in turns)</h2>
{_table(['trial', 'plan', 'picked', 'skipped / failed', 'accuracy %', 'drop', 'speed-up', 'ORT ms', 'MACs', 'ONNX MB'], fin_rows)}
<h2>Pareto plot of the trials</h2>
{f'<img alt="Pareto plot" src="{plot}">' if plot else '<p>No trial finished.</p>'}
<h2>Trials (proxy: short fine-tune on a subset, validation split)</h2>
{_table(['trial', 'state', 'plan', 'accuracy %', 'drop', 'speed-up', 'ORT ms', 'MACs', 'ONNX MB', 'feasible',
         'repeat of', 'seconds'], trial_rows)}
<p class="note">Proxy speed-ups time each trial's deployed ONNX file against the input model's in turns on ONNX Runtime
at batch {result['batch']}; with several workers on one machine they may collide, which is why the finalists are timed
again together. A trial is feasible when its proxy accuracy loss is within the bound plus the search's slack
({_c(result['settings']['proxy_slack'])} points).</p>
</body></html>
"""


def write_auto_report(out: Path, result: dict) -> Path:
    page = render_auto_report(result)
    path = Path(out) / REPORT
    write_atomic(path, lambda p: p.write_text(page))
    return path
