"""Which plans get a full run: one at a time, each picked after the full runs before it calibrated the proxy.

A short fine-tune overstates a plan's accuracy loss, by a factor that depends on the model and the
data (on the flagship, full runs lost 0.21-0.30 of what proxies losing 0.8-3.2 points lost). A fixed
slack either lets through plans that lose too much in full or shuts out plans that would keep the
bound, so the picks learn the factor from the full runs themselves:

1. the first finalist is the fastest plan the fixed slack allows (proxy drop at most
   ``max_drop + slack``); with none, the plan whose proxy lost least;
2. each finished full run gives a ratio, full drop / proxy drop. The next finalist is the fastest untried
   plan whose proxy drop, times the largest ratio seen so far, keeps the bound;
3. once a finalist keeps the bound in full, only plans faster than it are tried;
4. the fastest finalist that missed the bound by a little (at most ``NEAR_MISS`` times it) and is faster
   than any keeper may run again with twice the fine-tune epochs (``extend``): a longer KD fine-tune is
   what recovers accuracy most reliably, and the proxy cannot show it (its epochs are a fixed share of
   the plan's). It goes before the next pick when it is clearly faster (``next_run``), and after the
   picks otherwise. Each finalist is extended once;
5. with no pick and no near miss left, the budget left goes to the plan to publish (``polish``): the fastest
   keeper runs again with twice its epochs, and is published only if it lost less (``result.choose`` takes
   the most accurate of the keepers as fast within the timing's noise). Without this, a run whose first
   keeper shut out every other plan stopped with 47 of its 120 minutes unused (BENCHMARKS.md, random v2).

Plans within 3% of the fastest qualifying one count as equally fast (a 4-s timing repeats no better),
and the one whose proxy lost least of them is picked.

"Fastest" is the order the published plan is chosen by (``result.choose``): plans that reach the
target first, by speed-up; then the others, closest to the target first. The rows a decision compares
on speed are timed again together (``retime``) unless their speed-ups come from one timing already: a
trial's own short window, or a timing against the input model at another time, does not compare on this
machine's batch-1 levels.

Example:
    >>> from deepslim.auto.target import parse_target
    >>> rows = [{"trial": 0, "accuracy": 90.0, "drop": 4.0, "value": 6.0, "speedup": 6.0, "plan": {"r": 0},
    ...          "repeat_of": None},
    ...         {"trial": 1, "accuracy": 92.0, "drop": 2.0, "value": 4.0, "speedup": 4.0, "plan": {"r": 1},
    ...          "repeat_of": None}]
    >>> picker = FinalistPicker(rows, parse_target("speedup>=6"), max_drop=0.5, slack=3.0)
    >>> picker.next([])["trial"]  # the fastest plan within the slack: 2.0 <= 0.5 + 3.0
    1
"""

from __future__ import annotations

from .result import SPEED_TIE, distinct_plans
from .retime import apply_retimed
from .target import Target

MIN_PROXY_DROP = 0.5  # below this, a proxy's loss is mostly the validation split's noise: no usable ratio
MIN_RATIO = 0.1       # a full run that lost nothing says little about how much a harder plan loses
# a full run that lost up to twice the bound is worth a fine-tune twice as long: on the flagship, 14 KD epochs
# instead of 6 took the demo's loss from 0.59 to 0.31 points (BENCHMARKS.md); but 20 instead of 10 took a
# dropped-block plan's only from 0.83 to 0.73 (v2y), so the gain depends on the plan
NEAR_MISS = 2.0
EXTEND_EPOCHS = 2
MAX_RETIMES = 3  # timings before one decision: each puts the compared rows in one timing; the pick they give may differ


class FinalistPicker:
    """Picks finalists from the trial ``rows`` one at a time; ``next(tried)`` takes the finalists tried so
    far (entries with ``trial``, ``proxy`` (their row) and, once their full run finished, ``full_drop``)
    and returns the next row, or None. ``retime(rows)``, when given, times rows again together and returns
    ``{trial: figures}`` (``retime.retime_candidates``' form; a row it cannot time left out); the rows are
    updated in place. ``extendable(plan)``: whether the plan has a fine-tune to lengthen (default: yes)."""

    def __init__(self, rows: list[dict], target: Target, max_drop: float, slack: float, retime=None,
                 extendable=None):
        self.target, self.max_drop, self.slack, self.retime = target, max_drop, slack, retime
        self.extendable = extendable or (lambda plan: True)  # whether a plan has a fine-tune to make longer
        done = [r for r in rows if r.get("accuracy") is not None and r.get("value") is not None
                and r.get("repeat_of") is None]
        self.rows = distinct_plans(done)  # the same plan twice (a retried trial): its first row
        self.by_trial = {r["trial"]: r for r in self.rows}

    def rank(self, row: dict) -> tuple:
        """Smaller is better: reaching the target first, by speed-up; then the closest to the target."""
        if self.target.met(row):
            return (0, -(row.get("speedup") or 0.0))
        return (1, row["value"] if self.target.minimize() else -row["value"])

    def ratio(self, finished: list[dict]) -> float | None:
        """The largest full drop / proxy drop among finished finalists (None before any usable one)."""
        ratios = [f["full_drop"] / f["proxy"]["drop"] for f in finished  # an extension ran longer than its plan
                  if f.get("full_drop") is not None and (f["proxy"].get("drop") or 0.0) >= MIN_PROXY_DROP
                  and not is_extension(f)]
        return max(MIN_RATIO, max(ratios)) if ratios else None

    def next(self, tried: list[dict]) -> dict | None:
        """The next plan to run in full, given the finalists ``tried`` so far (finished, failed or skipped);
        the row gains ``pick``: the rule that chose it and, when calibrated, the predicted full drop."""
        return self._decide(tried, picks_left=True, extensions=False)[0]

    def _decide(self, tried: list[dict], picks_left: bool, extensions: bool) -> tuple[dict | None, dict | None]:
        """(the next pick, the next extension), either None. With ``retime``, the rows the decision compares
        on speed (the pick's tied rows, the extension's plan, the finalists that kept the bound) are timed
        again together first unless their speed-ups already come from one timing: a speed-up measured
        against the input model in another window is not comparable on this machine's batch-1 levels (the
        flagship's trial 73 timed 3.50x alone and 3.39x against the demo's 3.91x in one run)."""
        for attempt in range(MAX_RETIMES + 1):
            pick, compared = self._choose(tried) if picks_left else (None, [])
            extension, extension_compared = self._extend(tried) if extensions else (None, [])
            rows = {r["trial"]: r for r in compared + extension_compared}
            rows.update({f["trial"]: self._row(f) for f in self._keepers(tried)})
            if extension is not None:
                rows[extension["trial"]] = self._row(extension)
            timed = [r for r in rows.values() if self._by_speed(r)]  # ranked by MACs or size: no timing matters
            if self.retime is None or attempt == MAX_RETIMES or _one_timing(timed):
                return pick, extension
            self._retime_together(timed)
        raise AssertionError("unreachable")

    def _keepers(self, tried: list[dict]) -> list[dict]:
        """The finished finalists that kept the accuracy bound."""
        return [f for f in tried if f.get("full_drop") is not None and f["full_drop"] <= self.max_drop + 1e-9]

    def _row(self, finalist: dict) -> dict:
        """The picker's own row of a finalist's (or extension's) trial, whose figures retiming updates."""
        return self.by_trial.get(finalist["trial"], finalist.get("proxy", finalist))

    def _retime_together(self, rows: list[dict]) -> None:
        figures = self.retime(rows) or {}
        apply_retimed(rows, figures, self.target.metric)
        for row in rows:
            if str(row["trial"]) not in figures:  # its files are elsewhere (another machine's trial): its figures stand
                row["retimed"] = None

    def _choose(self, tried: list[dict]) -> tuple[dict | None, list[dict]]:
        """(the pick or None, the rows it was compared with on speed: the plans tied with it, and the fastest
        plan a keeper's speed shut out)."""
        seen = {f["trial"] for f in tried}
        finished = [f for f in tried if f.get("full_drop") is not None]
        keeping = self._keepers(tried)
        ratio = self.ratio(finished)
        if ratio is None:
            def qualifies(r):
                return r["drop"] <= self.max_drop + self.slack
        else:
            def qualifies(r):
                return max(0.0, r["drop"]) * ratio <= self.max_drop + 1e-9
        candidates = sorted((r for r in self.rows if r["trial"] not in seen),
                            key=lambda r: (self.rank(r), -r["accuracy"]))
        shut_out = []
        if keeping:  # only a plan clearly faster can beat a finalist that keeps the bound
            best = min((self._row(f) for f in keeping), key=self.rank)
            shut_out = [r for r in candidates if qualifies(r) and not self.clearly_faster(r, best)][:1]
            candidates = [r for r in candidates if self.clearly_faster(r, best)]
        if ratio is None:
            within = [r for r in candidates if qualifies(r)]
            if within:
                tied = self._tied(within)
                row = min(tied, key=lambda r: r["drop"])
                return {**row, "pick": {"rule": f"the fastest plan within the proxy slack ({self.slack:g} points)"}}, \
                    tied + shut_out
            if finished or not candidates:
                return None, shut_out
            least = min(candidates, key=lambda r: r["drop"])
            return {**least, "pick": {"rule": "no plan within the proxy slack: the one whose proxy lost least"}}, []
        keeps = [r for r in candidates if qualifies(r)]
        if not keeps:
            return None, shut_out
        tied = self._tied(keeps)
        row = min(tied, key=lambda r: r["drop"])
        predicted = max(0.0, row["drop"]) * ratio
        return {**row, "pick": {"rule": f"the fastest plan predicted to keep the bound (full runs lost up to "
                                        f"{ratio:.2f} of their proxy's loss)",
                                "ratio": round(ratio, 3), "predicted_drop": round(predicted, 2)}}, tied + shut_out

    def next_run(self, tried: list[dict], picks_left: bool = True) -> dict | None:
        """What runs next: the next pick (``next``; only while ``picks_left``) or the extension (``extend``), the
        extension first only when it is clearly faster; when neither is left, the polish (``polish``); else None."""
        pick, extension = self._decide(tried, picks_left, extensions=True)
        if pick is None and extension is None:
            return self.polish(tried)
        if pick is None or extension is None:
            return pick or extension
        return extension if self.clearly_faster(extension, pick) else pick

    def polish(self, tried: list[dict]) -> dict | None:
        """The keeper that would be published (the fastest finalist that kept the bound; of those as fast, the one
        that lost least), again with ``EXTEND_EPOCHS`` times its fine-tune epochs, once: with no plan left to try,
        the budget left goes to the published plan's accuracy (a longer KD fine-tune recovers more; the result
        publishes the longer run only if it lost less, at the same speed). None when it lost nothing, has no
        fine-tune, or a longer run of its plan was already tried; once per run."""
        if any((f.get("pick") or {}).get("polish") for f in tried):  # once per run
            return None
        keepers = [f for f in self._keepers(tried) if f.get("plan") and self.extendable(f["plan"])]
        if not keepers:
            return None
        tied = self._tied(sorted((self._row(f) for f in keepers), key=self.rank))
        f = min((f for f in keepers if self._row(f) in tied), key=lambda f: (f["full_drop"], -int(f["plan"]["epochs"])))
        epochs = int(f["plan"]["epochs"]) * EXTEND_EPOCHS
        longer = [g for g in tried if g["trial"] == f["trial"] and int((g.get("plan") or {}).get("epochs", 0)) >= epochs]
        if f["full_drop"] <= 0 or longer:
            return None
        base = f["pick"]["extends"] if is_extension(f) else f["trial"]
        return {**self._row(f), "plan": {**f["plan"], "epochs": epochs},
                "pick": {"rule": f"trial {f['trial']} again with {epochs} fine-tune epochs instead of {f['plan']['epochs']}: "
                                 f"no plan is left to try, and it is the plan to publish ({f['full_drop']:.2f} points lost)",
                         "extends": base, "polish": True}}

    def extend(self, tried: list[dict]) -> dict | None:
        """The fastest finished finalist that missed the bound by at most ``NEAR_MISS`` times it, whose plan has a
        fine-tune (``extendable``) and is clearly faster than any keeper, with ``EXTEND_EPOCHS`` times the fine-tune
        epochs (its row with the longer ``plan``; ``pick`` says which finalist it extends); or None. Near misses
        as fast within the timing's noise: the one that lost least."""
        return self._extend(tried)[0]

    def _extend(self, tried: list[dict]) -> tuple[dict | None, list[dict]]:
        finished = [f for f in tried if f.get("full_drop") is not None]
        extended = {f["pick"]["extends"] for f in tried if is_extension(f)}
        keeping = [self._row(f) for f in self._keepers(tried)]
        near = sorted((f for f in finished if not is_extension(f) and f["trial"] not in extended
                       and self.max_drop + 1e-9 < f["full_drop"] <= NEAR_MISS * self.max_drop + 1e-9
                       and self.extendable(f["plan"])), key=lambda f: self.rank(self._row(f)))
        faster = [f for f in near if all(self.clearly_faster(self._row(f), k) for k in keeping)]
        shut_out = [self._row(f) for f in near if f not in faster][:1]  # compared with the keepers on speed
        if not faster:
            return None, shut_out
        tied = self._tied([self._row(f) for f in faster])
        f = min((f for f in faster if self._row(f) in tied), key=lambda f: f["full_drop"])
        epochs = int(f["plan"]["epochs"]) * EXTEND_EPOCHS
        return {**self._row(f), "plan": {**f["plan"], "epochs": epochs},
                "pick": {"rule": f"trial {f['trial']} again with {epochs} fine-tune epochs instead of {f['plan']['epochs']}: "
                                 f"the fastest finalist that missed the bound by a little ({f['full_drop']:.2f} points lost)",
                         "extends": f["trial"]}}, tied + shut_out

    def _by_speed(self, row: dict) -> bool:
        return bool(row.get("speedup")) and (self.rank(row)[0] == 0 or self.target.metric in ("speedup", "ort_latency_ms"))

    def clearly_faster(self, row: dict, than: dict) -> bool:
        """Ranked ahead of ``than``, and by more than ``SPEED_TIE`` when both are ranked by a measured speed."""
        if self.rank(row)[0] == self.rank(than)[0] and self._by_speed(row) and self._by_speed(than):
            return row["speedup"] > than["speedup"] * (1 + SPEED_TIE)
        return self.rank(row) < self.rank(than)

    def _tied(self, ranked: list[dict]) -> list[dict]:
        """The rows as fast as the first within the timing's repeatability (``SPEED_TIE``), when they are ranked
        by a measured speed; the most accurate of them is the pick. Ranked by MACs or size: the first alone."""
        first = ranked[0]
        if not self._by_speed(first):
            return [first]
        floor = first["speedup"] / (1 + SPEED_TIE)  # so that no plan left out is clearly faster than the pick
        return [r for r in ranked if self.rank(r)[0] == self.rank(first)[0] and (r.get("speedup") or 0.0) >= floor]


def _one_timing(rows: list[dict]) -> bool:
    """Whether the rows' speed-ups can be compared: each retimed (not its trial's own short window), all in
    one timing (``session``; the first retime of the search's best is 0). Rows that cannot be timed here
    (``retimed`` None: another machine's trial) are left out."""
    timeable = [r for r in rows if r.get("retimed", {}) is not None]
    if any("retimed" not in r for r in timeable):
        return False
    return len({r["retimed"].get("session", 0) for r in timeable}) <= 1


def is_extension(finalist: dict) -> bool:
    """Whether a finalist is another finalist's plan run again with a longer fine-tune (``extend``)."""
    return "extends" in (finalist.get("pick") or {})


def pick_text(pick: dict | None) -> str:
    """A finalist's pick for people: the rule, and the predicted full drop when there is one."""
    if not pick:
        return ""
    return pick["rule"] + (f"; predicted full drop {pick['predicted_drop']:.2f}" if "predicted_drop" in pick else "")
