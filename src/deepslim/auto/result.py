"""What `deepslim auto` returns: the trials table, the proxy Pareto front, the finalists and the pick.

Example:
    >>> rows = [{"trial": 0, "accuracy": 90.0, "value": 3.0}, {"trial": 1, "accuracy": 91.0, "value": 2.0}]
    >>> [r["trial"] for r in pareto_front(rows, maximize_value=True)]
    [0, 1]
"""

from __future__ import annotations

import optuna

from .space import plan_key
from .target import Target

# plans within 3% of the fastest count as equally fast: the flagship's finalists timed 2.63x/3.31x when picked
# (4 s), 2.66x/3.33x in the run's final timing and 2.76x/3.35x in a later interleaved run (BENCHMARKS.md)
SPEED_TIE = 0.03


def trial_rows(study: optuna.Study, target: Target) -> list[dict]:
    """One row per trial (every state but queued-and-not-run): plan, proxy figures, state; what the table
    and the report show. (A starting plan the budget or --trials never reached stays queued, with no plan.)"""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.WAITING:
            continue
        proxy = t.user_attrs.get("proxy") or {}
        rows.append({"trial": t.number, "state": t.state.name.lower(), "plan": dict(t.params),
                     "description": t.user_attrs.get("description", ""),
                     **{k: proxy.get(k) for k in ("accuracy", "drop", "speedup", "ort_latency_ms", "macs",
                                                   "size_mb", "precision", "seconds", "onnx")},
                     "value": proxy.get(target.metric), "feasible": t.user_attrs.get("constraint", 1e9) <= 0,
                     "repeat_of": t.user_attrs.get("repeat_of"), "worker": t.user_attrs.get("worker"),
                     "starting_plan": t.user_attrs.get("starting_plan")})
    return rows


def pareto_front(rows: list[dict], maximize_value: bool) -> list[dict]:
    """Rows no other row beats on both accuracy (higher) and the target's metric; sorted by accuracy."""
    def better_or_equal(a, b):
        value_ok = a["value"] >= b["value"] if maximize_value else a["value"] <= b["value"]
        return a["accuracy"] >= b["accuracy"] and value_ok

    done = [r for r in rows if r.get("accuracy") is not None and r.get("value") is not None and r.get("repeat_of") is None]
    front = [r for r in done if not any(better_or_equal(o, r) and (o["accuracy"], o["value"]) != (r["accuracy"], r["value"])
                                        for o in done)]
    return sorted(front, key=lambda r: r["accuracy"])


def distinct_plans(rows: list[dict]) -> list[dict]:
    """``rows`` in order, each plan once (its first row)."""
    picked, seen = [], set()
    for r in rows:
        key = plan_key(r["plan"])
        if key not in seen:
            seen.add(key)
            picked.append(r)
    return picked


def choose(finalists: list[dict], target: Target, max_drop: float) -> tuple[dict | None, dict | None]:
    """(best, fallback) among finished full runs: ``best`` keeps the accuracy bound and is the fastest of
    those reaching the target (none reaching it: the closest to it), the most accurate of those as fast
    within ``SPEED_TIE`` (a plan and its longer fine-tune time alike); ``fallback`` is the least-damaged
    one that misses the bound."""
    def rank(r):  # those reaching the target first, the fastest of them; then the closest to it
        value = r["measured"][target.metric]
        if target.met(r["measured"]):
            return (0, -r["measured"]["speedup"])
        return (1, -value if not target.minimize() else value)

    def by_speed(r) -> bool:
        return rank(r)[0] == 0 or target.metric in ("speedup", "ort_latency_ms")

    done = [r for r in finalists if r.get("measured")]
    keeps = [r for r in done if r["measured"]["drop"] <= max_drop + 1e-9]
    misses = [r for r in done if r not in keeps]
    best = min(keeps, key=rank) if keeps else None
    if best is not None:
        if by_speed(best):
            floor = best["measured"]["speedup"] / (1 + SPEED_TIE)
            tied = [r for r in keeps if rank(r)[0] == rank(best)[0] and r["measured"]["speedup"] >= floor]
        else:
            tied = [r for r in keeps if rank(r) == rank(best)]
        best = min(tied, key=lambda r: (r["measured"]["drop"], rank(r)))
    fallback = min(misses, key=lambda r: r["measured"]["drop"]) if misses else None
    return best, fallback


def status_of(best: dict | None, fallback: dict | None, target: Target) -> str:
    """``met``: a plan keeps the accuracy bound and reaches the target; ``not met``: full runs finished
    but none does both; ``budget exhausted``: no full run finished in the budget."""
    if best is None and fallback is None:
        return "budget exhausted"
    return "met" if best is not None and target.met(best["measured"]) else "not met"
