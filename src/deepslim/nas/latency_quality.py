"""How good a latency table's predictor is: held-out subnets timed whole against ``predict``.

The issue's yardsticks: mean absolute % error, the share within +-10 % and Kendall's tau (ranking
is what a search needs). Kept apart from ``latency_table`` because it times whole models, which
building the table does only for its small fit set.

Example:
    >>> quality_metrics([1.0, 2.0, 3.2], [1.0, 2.1, 3.0])["within_10_percent"]
    100.0
"""

from __future__ import annotations

import math

import numpy as np

from ..core import DeepslimError
from .latency_table import LatencyTable, measure_subnets
from .space import Arch


def kendall_tau(x, y) -> float:
    """Kendall's tau-b between two sequences (scipy's when installed, else the O(n^2) definition).

    Example:
        >>> round(kendall_tau([1, 2, 3, 4], [10, 20, 40, 30]), 4)
        0.6667
    """
    x, y = list(map(float, x)), list(map(float, y))
    if len(x) != len(y) or len(x) < 2:
        raise DeepslimError("Kendall tau needs two sequences of the same length >= 2")
    try:
        from scipy.stats import kendalltau
    except ImportError:
        kendalltau = None
    if kendalltau is not None:
        return float(kendalltau(x, y).statistic)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx * dy > 0:
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else float("nan")


def quality_metrics(predicted, measured) -> dict:
    """Mean absolute % error, share within +-10 % (in %) and Kendall tau of predictions against measurements.

    Example:
        >>> quality_metrics([1.0, 2.0, 3.2], [1.0, 2.1, 3.0])["within_10_percent"]
        100.0
    """
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    errors = np.abs(p - m) / m * 100.0
    return {"n": int(len(m)), "mean_abs_percent_error": float(errors.mean()),
            "within_10_percent": float((errors <= 10.0).mean() * 100.0),
            "max_abs_percent_error": float(errors.max()), "kendall_tau": kendall_tau(p, m)}


def predictor_quality(table: LatencyTable, n: int = 50, *, seed: int = 1, threads: int | None = None,
                      min_seconds: float | None = None, rounds: int | None = None, supernet=None) -> dict:
    """Time ``n`` held-out random subnets whole (extracted, exported, on ORT) and compare with ``predict``.

    Held out: none of them is among the archs the overhead was fitted on. Returns per batch size (as a
    string key) ``n``, ``mean_abs_percent_error``, ``within_10_percent``, ``max_abs_percent_error`` and
    ``kendall_tau``, plus ``rows`` (arch, predicted and measured ms). Threads, seconds and rounds default to
    the table's own settings.
    """
    space = table.space
    threads = threads or int(table.environment.get("threads", 2))
    min_seconds = min_seconds or float(table.settings.get("min_seconds", 0.1))
    rounds = rounds or int(table.settings.get("rounds", 1))
    fitted = {Arch.from_dict(a).key() for a in table.fit.get("archs", [])}
    rng = np.random.default_rng(seed)
    archs, seen, tries = [], set(fitted), 0
    while len(archs) < n and tries < 100 * n:
        tries += 1
        a = space.sample(rng)
        if a.key() not in seen:
            seen.add(a.key())
            archs.append(a)
    if len(archs) < 2:
        raise DeepslimError("the space has too few archs left to judge the predictor on", hint="lower n")
    measured = measure_subnets(space, archs, table.batch_sizes, image_size=table.image_size, threads=threads,
                               min_seconds=min_seconds, rounds=rounds, supernet=supernet, desc="held-out subnets")
    out: dict = {"threads": threads, "rows": []}
    for b in table.batch_sizes:
        out[str(b)] = quality_metrics([table.predict(a, b) for a in archs], [m[b] for m in measured])
    for a, m in zip(archs, measured):
        out["rows"].append({"arch": a.to_dict(),
                            **{f"predicted_ms_{b}": table.predict(a, b) for b in table.batch_sizes},
                            **{f"measured_ms_{b}": m[b] for b in table.batch_sizes}})
    return out
