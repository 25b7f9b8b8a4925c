"""Pareto fronts of (cost, accuracy) points and their 2-D hypervolume: how the trade-off a search or
a supernet offers is summed up in one number. Cost is minimised (latency, MACs), accuracy maximised.

Written here rather than imported: pymoo and botorch have hypervolumes, but for two objectives it is
a sort and a sum, not worth a dependency.

Example:
    >>> points = [{"ms": 1.0, "accuracy": 90.0}, {"ms": 2.0, "accuracy": 92.0}, {"ms": 2.5, "accuracy": 91.0}]
    >>> [p["ms"] for p in pareto_front(points, cost="ms")]
    [1.0, 2.0]
    >>> hypervolume(points, cost="ms", reference=(3.0, 80.0))
    22.0
"""

from __future__ import annotations

from ..core import DeepslimError


def pareto_front(points: list[dict], *, cost: str, accuracy: str = "accuracy") -> list[dict]:
    """The points no other point beats on both ``cost`` (lower) and ``accuracy`` (higher), by cost.

    Of points equal on both, the first is kept.
    """
    ordered = sorted(points, key=lambda p: (p[cost], -p[accuracy]))
    front, best = [], float("-inf")
    for p in ordered:
        if p[accuracy] > best:
            front.append(p)
            best = p[accuracy]
    return front


def hypervolume(points: list[dict], *, cost: str, reference: tuple[float, float], accuracy: str = "accuracy") -> float:
    """Area dominated by ``points`` and bounded by ``reference = (worst cost, worst accuracy)``, in
    units of cost x accuracy points. Points beyond the reference add nothing; a larger area is a
    better front. Compare fronts only with the same reference.
    """
    max_cost, min_accuracy = map(float, reference)
    if not points:
        raise DeepslimError("hypervolume of no points", hint="give at least one point")
    inside = [p for p in pareto_front(points, cost=cost, accuracy=accuracy)
              if p[cost] < max_cost and p[accuracy] > min_accuracy]
    area = 0.0
    for i, p in enumerate(inside):  # by cost, accuracy rising: each point owns the strip to the next one
        right = inside[i + 1][cost] if i + 1 < len(inside) else max_cost
        area += (right - p[cost]) * (p[accuracy] - min_accuracy)
    return area
