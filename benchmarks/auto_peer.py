"""Two or more `deepslim auto` runs side by side: how each search went, from their metrics.json alone.

Issue 19's peer row: the same command with ``--sampler tpe`` and ``--sampler random`` (same space,
same budget). This reads each run's trials and finalists and prints, per run: trials and distinct
plans, how many kept the accuracy bound at the proxy, the best feasible proxy speed-up and after how
many minutes of trials it was first reached (within 5%), the finalists' full-run figures and what was
published. It times nothing: the published models are compared in one interleaved run by
``auto_vs_recipe.py``.

    .venv/bin/python benchmarks/auto_peer.py --run tpe=runs/auto-flagship --run random=runs/auto-flagship-random \\
        --json benchmarks/results/auto/peer.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import markdown_table, write_json  # noqa: E402


def _proxy_speedup(row: dict) -> float:
    """The trial's speed-up: its retimed figure where the run timed it again before the pick."""
    return float((row.get("retimed") or {}).get("speedup", row["speedup"]))


def search_summary(metrics: dict) -> dict:
    """What one run's search did, from its metrics.json."""
    rows = [r for r in metrics["trials"] if r["state"] == "complete"]
    ran = [r for r in rows if r.get("repeat_of") is None]
    feasible = [r for r in rows if r.get("feasible")]
    minutes, elapsed, best_at = {}, 0.0, None
    for r in sorted(ran, key=lambda r: r["trial"]):
        elapsed += float(r.get("seconds") or 0.0)
        minutes[r["trial"]] = elapsed / 60
    best = max(feasible, key=_proxy_speedup, default=None)
    if best is not None:
        first = min((r for r in feasible if _proxy_speedup(r) >= 0.95 * _proxy_speedup(best)),
                    key=lambda r: r["trial"])
        best_at = minutes.get(first["trial"], minutes.get(first.get("repeat_of"), 0.0))
    finalists = [{"trial": f["trial"], "description": f["description"], **{k: f["measured"][k] for k in (
        "accuracy", "drop", "speedup") if k in f.get("measured", {})}} for f in metrics.get("finalists", [])
        if f.get("measured")]
    return {"trials": len(rows), "plans_run": len(ran), "failed": sum(r["state"] == "fail" for r in metrics["trials"]),
            "feasible_at_proxy": len(feasible), "trial_minutes": round(elapsed / 60, 1),
            "best_proxy": None if best is None else {"trial": best["trial"], "description": best["description"],
                                                     "speedup": _proxy_speedup(best), "drop": best["drop"],
                                                     "first_within_5pct_after_min": round(best_at, 1)},
            "finalists": finalists, "published": metrics.get("published"), "status": metrics.get("status"),
            "spent_s": metrics.get("spent_s"), "settings": {k: metrics["settings"].get(k) for k in (
                "sampler", "seed", "budget_s", "proxy_images", "proxy_epoch_scale", "proxy_slack", "top_k")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=FOLDER", help="an auto --out folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    record, rows, finals = {}, [], []
    for label, folder in (r.split("=", 1) for r in args.run):
        s = search_summary(json.loads((Path(folder) / "metrics.json").read_text()))
        record[label] = {"folder": folder, **s}
        best = s["best_proxy"]
        pub = s["published"] or {}
        rows.append([label, s["settings"]["sampler"], s["trials"], s["plans_run"], s["failed"], s["feasible_at_proxy"],
                     f"{best['speedup']:.2f}x (trial {best['trial']}, {best['drop']:.2f} points lost at the proxy)" if best else "-",
                     f"{best['first_within_5pct_after_min']:.0f} min" if best else "-",
                     f"{pub.get('description', '-')}: {pub.get('accuracy', 0):.2f}% ({-pub.get('drop', 0):+.2f})"
                     if pub else "-", s["status"]])
        finals += [[label, f["trial"], f["description"], f"{f.get('accuracy', 0):.2f}", f"{-f.get('drop', 0):+.2f}",
                    f"{f.get('speedup', 0):.2f}x"] for f in s["finalists"]]
    print(markdown_table(["run", "sampler", "trials", "plans run", "failed", "within bound (proxy)",
                          "best proxy speed-up within bound", "reached after", "published", "status"], rows))
    print()
    print(markdown_table(["run", "finalist", "plan", "test acc %", "vs input", "b1 speed-up (timed together)"], finals))
    if args.json:
        write_json(args.json, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
