"""Time the search's best candidates again, together, before the finalists are picked.

A proxy trial times its plan against the input model over a short window (``--latency-seconds``),
and a shared machine's batch-1 times flip between levels for seconds at a time (BENCHMARKS.md,
"Batch-1 levels on this machine"): one lucky window can put a plan far ahead of what it is. On the
flagship's first search a plan measured 6.4x in its trial where its neighbours measured 3.7x. So
before picking, the input model and the ``n`` most promising distinct feasible plans (the
Pareto front first, then the best on the target's metric) are timed in one interleaved run, and
their speed-up and latency replaced by that run's (the trial's figure is kept as ``speedup_trial``).

Example:
    >>> retimed = retime_candidates(out, rows, "speedup", batch=1, seconds=2.0)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from ..core import log
from ..profiling.latency import interleave_latency
from .result import distinct_plans, pareto_front


def candidates(rows: list[dict], maximize_value: bool, n: int) -> list[dict]:
    feasible = [r for r in rows if r.get("accuracy") is not None and r["feasible"] and r.get("repeat_of") is None]
    ranked = pareto_front(feasible, maximize_value) + sorted(feasible, key=lambda r: -r["value"] if maximize_value
                                                             else r["value"])
    return distinct_plans(ranked)[:n]


def retime_candidates(out: Path, rows: list[dict], example, *, batch: int, seconds: float, maximize_value: bool,
                      n: int = 8, pick: bool = True, session: int = 0) -> dict:
    """``{trial: {speedup, ort_latency_ms, ..., session}}`` for the ``n`` candidates (``pick=False``: ``rows`` as
    they are), timed together with the input model; ``session`` numbers the timing (figures from one timing
    compare; from two, not)."""
    # with a shared database some trials ran on other machines: their files are not here to time
    here = [r for r in rows if r.get("onnx") and (out / "trials" / f"{r['trial']:04d}" / r["onnx"]).is_file()]
    chosen = candidates(here, maximize_value, n) if pick else here[:n]
    if not chosen:
        return {}
    files = [out / "baseline" / "model.onnx"] + [out / "trials" / f"{r['trial']:04d}" / r["onnx"] for r in chosen]
    log(f"timing the input model and {len(chosen)} plan(s) again, together, in turns "
        f"(about {len(files) * seconds:.0f} s)")
    (times,) = interleave_latency(files, example, batch_sizes=(batch,), runtimes=("onnxruntime",), min_seconds=seconds)
    retimed = {}
    for i, r in enumerate(chosen, start=1):
        cmp = times.compare(0, i)
        retimed[str(r["trial"])] = {"speedup": cmp.speedup, "ort_latency_ms": cmp.candidate_ms,
                                    "speedup_range": [cmp.speedup_min, cmp.speedup_max], "rounds": cmp.rounds,
                                    "session": session}
    return retimed


class RetimeLog:
    """The picker's timings (``time(rows, session)`` -> figures), logged in order through ``save(log)``, so a
    resumed run replays the same figures and makes the same picks; a timing that does not match the log
    (other rows) is made anew, and the log is cut there.

    Example:
        >>> timings = RetimeLog([], lambda log: None, lambda rows, session: {"3": {"speedup": 2.0, "session": session}})
        >>> timings([{"trial": 3}])
        {'3': {'speedup': 2.0, 'session': 1}}
    """

    def __init__(self, log: list[dict], save, time):
        self.log, self.save, self.time, self.next = list(log), save, time, 0

    def __call__(self, rows: list[dict]) -> dict:
        i, trials = self.next, sorted(str(r["trial"]) for r in rows)
        self.next += 1
        if i < len(self.log) and self.log[i]["trials"] == trials:
            return self.log[i]["figures"]
        figures = self.time(rows, i + 1)  # session 0 is the first timing of the search's best
        self.log = [*self.log[:i], {"trials": trials, "figures": figures}]
        self.save(self.log)
        return figures


def apply_retimed(rows: list[dict], retimed: dict, metric: str) -> None:
    """Put the retimed figures into the trial rows (in place); the trial's own stay as ``*_trial``."""
    for r in rows:  # a repeated plan's row carries its original's figures, retimed with it
        again = retimed.get(str(r["trial"] if r.get("repeat_of") is None else r["repeat_of"]))
        if again is None:
            continue
        if "speedup_trial" not in r:  # timed again a second time: the trial's own figures are the first
            r["speedup_trial"], r["ort_latency_ms_trial"] = r["speedup"], r["ort_latency_ms"]
        r["speedup"], r["ort_latency_ms"], r["retimed"] = again["speedup"], again["ort_latency_ms"], again
        if metric in ("speedup", "ort_latency_ms"):
            r["value"] = r[metric]
