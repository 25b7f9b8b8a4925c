"""Greedy budget allocation over per-unit options, shared by pruning and factorization.

Each unit (a layer, or a group of coupled layers) offers ordered steps, each with a
predicted accuracy drop and the model's MACs if only that unit took that step. The
allocator repeatedly takes the single step that costs the least extra drop per MAC
saved, until the predicted total fits the budget. Savings and drops are assumed to add
up across units; callers that need an exact budget measure the result and adjust.
"""

from __future__ import annotations

from typing import Hashable


def greedy_allocate(steps: dict[Hashable, list[tuple[object, float, int]]], baseline_macs: int,
                    target_macs: float) -> dict[Hashable, int]:
    """Index of the chosen step per unit (units left alone are absent).

    ``steps[unit]`` lists ``(choice, drop, macs)`` in the order the unit may move through
    them (each step saving more than the one before).

    Example:
        >>> greedy_allocate({"a": [(0.5, 1.0, 80)], "b": [(0.5, 0.1, 90), (0.8, 5.0, 70)]}, 100, 90)
        {'b': 0}
    """
    chosen = {unit: -1 for unit in steps}
    predicted = baseline_macs

    def state(unit) -> tuple[float, int]:
        i = chosen[unit]
        return (0.0, baseline_macs) if i < 0 else (steps[unit][i][1], steps[unit][i][2])

    while predicted > target_macs:
        best, best_score = None, None
        for unit, options in steps.items():
            if chosen[unit] + 1 >= len(options):
                continue
            drop_now, macs_now = state(unit)
            _, drop_next, macs_next = options[chosen[unit] + 1]
            saving = macs_now - macs_next
            if saving <= 0:
                continue
            score = (max(drop_next - drop_now, 0.0) / saving, -saving)  # ties: the bigger saving
            if best_score is None or score < best_score:
                best, best_score = unit, score
        if best is None:
            break  # nothing left to take
        macs_now = state(best)[1]
        chosen[best] += 1
        predicted -= macs_now - steps[best][chosen[best]][2]
    return {unit: i for unit, i in chosen.items() if i >= 0}
