"""Which plans get a full run: one at a time, each picked after the full runs before it calibrated the proxy.

A short fine-tune overstates a plan's accuracy loss, by a factor that depends on the model and the
data (on the flagship, full runs lost 0.21-0.27 of what proxies losing 0.8-3.2 points lost). A fixed
slack either lets through plans that lose too much in full or shuts out plans that would keep the
bound, so the picks learn the factor from the full runs themselves:

1. the first finalist is the fastest plan the fixed slack allows (proxy drop at most
   ``max_drop + slack``); with none, the plan whose proxy lost least;
2. each finished full run gives a ratio, full drop / proxy drop. The next finalist is the fastest untried
   plan whose proxy drop, times the largest ratio seen so far, keeps the bound;
3. once a finalist keeps the bound in full, only plans faster than it are tried; with none left, the
   picking ends early.

"Fastest" is the best value of the target's metric (speed-up up; latency, MACs or size down).

Example:
    >>> from deepslim.auto.target import parse_target
    >>> rows = [{"trial": 0, "accuracy": 90.0, "drop": 4.0, "value": 6.0, "plan": {"r": 0}, "repeat_of": None},
    ...         {"trial": 1, "accuracy": 92.0, "drop": 2.0, "value": 4.0, "plan": {"r": 1}, "repeat_of": None}]
    >>> picker = FinalistPicker(rows, parse_target("speedup>=6"), max_drop=0.5, slack=3.0)
    >>> picker.next([])["trial"]  # the fastest plan within the slack: 2.0 <= 0.5 + 3.0
    1
"""

from __future__ import annotations

from .result import distinct_plans
from .target import Target

MIN_PROXY_DROP = 0.1  # a proxy that lost less than this gives no usable ratio
MIN_RATIO = 0.1       # a full run that lost nothing says little about how much a harder plan loses


class FinalistPicker:
    """Picks finalists from the trial ``rows`` one at a time; ``next(tried)`` takes the finalists tried so
    far (entries with ``trial``, ``proxy`` (their row) and, once their full run finished, ``full_drop``)
    and returns the next row, or None."""

    def __init__(self, rows: list[dict], target: Target, max_drop: float, slack: float):
        done = [r for r in rows if r.get("accuracy") is not None and r.get("value") is not None
                and r.get("repeat_of") is None]
        # the same plan twice (re-proposed or retried): its first row
        self.rows = distinct_plans(sorted(done, key=lambda r: (self._speed_key(r, target), -r["accuracy"])))
        self.target, self.max_drop, self.slack = target, max_drop, slack

    @staticmethod
    def _speed_key(row: dict, target: Target) -> float:
        return row["value"] if target.minimize() else -row["value"]

    def ratio(self, finished: list[dict]) -> float | None:
        """The largest full drop / proxy drop among finished finalists (None before any usable one)."""
        ratios = [f["full_drop"] / f["proxy"]["drop"] for f in finished
                  if f.get("full_drop") is not None and (f["proxy"].get("drop") or 0.0) >= MIN_PROXY_DROP]
        return max(MIN_RATIO, max(ratios)) if ratios else None

    def next(self, tried: list[dict]) -> dict | None:
        """The next plan to run in full, given the finalists ``tried`` so far (finished, failed or skipped);
        the row gains ``pick``: the rule that chose it and, when calibrated, the predicted full drop."""
        seen = {f["trial"] for f in tried}
        finished = [f for f in tried if f.get("full_drop") is not None]
        keeping = [f for f in finished if f["full_drop"] <= self.max_drop + 1e-9]
        candidates = [r for r in self.rows if r["trial"] not in seen]
        if keeping:  # only a faster plan can beat a finalist that keeps the bound
            fastest = min(self._speed_key(f["proxy"], self.target) for f in keeping)
            candidates = [r for r in candidates if self._speed_key(r, self.target) < fastest]
        ratio = self.ratio(finished)
        if ratio is None:
            within = [r for r in candidates if r["drop"] <= self.max_drop + self.slack]
            if within:
                return {**within[0], "pick": {"rule": f"fastest plan within the proxy slack ({self.slack:g} points)"}}
            if finished or not candidates:
                return None
            least = min(candidates, key=lambda r: r["drop"])
            return {**least, "pick": {"rule": "no plan within the proxy slack: the one whose proxy lost least"}}
        for row in candidates:
            predicted = max(0.0, row["drop"]) * ratio
            if predicted <= self.max_drop + 1e-9:
                return {**row, "pick": {"rule": f"fastest plan predicted to keep the bound (full runs lost up to "
                                                f"{ratio:.2f} of their proxy's loss)",
                                        "ratio": round(ratio, 3), "predicted_drop": round(predicted, 2)}}
        return None
