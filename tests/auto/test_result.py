from deepslim.auto.result import choose, pareto_front, pick_finalists, status_of
from deepslim.auto.target import parse_target


def _row(trial, accuracy, value, drop, feasible=True, **plan):
    return {"trial": trial, "accuracy": accuracy, "value": value, "drop": drop, "feasible": feasible,
            "plan": {"ratio": trial, **plan}, "repeat_of": None}


def test_pareto_front_keeps_only_undominated_rows():
    rows = [_row(0, 90, 3.0, 1), _row(1, 91, 2.0, 0), _row(2, 89, 2.5, 2), _row(3, 92, 1.0, 0)]
    front = pareto_front(rows, maximize_value=True)
    assert [r["trial"] for r in front] == [0, 1, 3]  # 2 is beaten by 0 on both
    front = pareto_front(rows, maximize_value=False)  # a cost: lower is better
    assert [r["trial"] for r in front] == [3]


def test_finalists_spread_over_the_feasible_front():
    target = parse_target("speedup>=6")
    rows = [_row(i, 95 - i, 1.0 + i, i * 0.5) for i in range(6)] + [_row(9, 80, 20.0, 15, feasible=False)]
    picked = pick_finalists(rows, target, 3)
    # within half the best speed-up (>= 3.0x): fastest feasible, most accurate, between; never the infeasible
    assert [r["trial"] for r in picked] == [5, 2, 3]
    assert [r["trial"] for r in pick_finalists(rows, target, 1)] == [5]


def test_finalists_when_nothing_is_feasible_are_the_least_damaged():
    target = parse_target("speedup>=6")
    rows = [_row(0, 80, 9.0, 14, False), _row(1, 90, 2.0, 4, False), _row(2, 85, 5.0, 9, False)]
    assert [r["trial"] for r in pick_finalists(rows, target, 2)] == [1, 2]


def _finalist(trial, drop, speedup, macs=1e6):
    return {"trial": trial, "measured": {"drop": drop, "speedup": speedup, "macs": macs}}


def test_choose_and_status():
    target = parse_target("speedup>=6")
    best, fallback = choose([_finalist(0, 0.3, 5.0), _finalist(1, 0.4, 6.5), _finalist(2, 0.9, 9.0)], target, 0.5)
    assert best["trial"] == 1 and fallback["trial"] == 2
    assert status_of(best, fallback, target) == "met"
    best, fallback = choose([_finalist(0, 0.3, 5.0), _finalist(2, 0.9, 9.0)], target, 0.5)
    assert best["trial"] == 0 and status_of(best, fallback, target) == "not met"
    best, fallback = choose([_finalist(2, 0.9, 9.0), _finalist(3, 0.7, 3.0)], target, 0.5)
    assert best is None and fallback["trial"] == 3 and status_of(best, fallback, target) == "not met"
    assert status_of(*choose([{"trial": 4, "skipped": "no time"}], target, 0.5), target) == "budget exhausted"


def test_finalists_skip_the_front_that_barely_compresses():
    target = parse_target("speedup>=6")
    rows = [_row(0, 95.0, 1.0, 0.1), _row(1, 94.0, 3.0, 0.5), _row(2, 93.0, 4.0, 1.0)]
    assert [r["trial"] for r in pick_finalists(rows, target, 3)] == [2, 1]  # 1.0x is below half of 4.0x
    cost = parse_target("macs<=5e6")
    rows = [_row(0, 95.0, 9e6, 0.1), _row(1, 94.0, 4e6, 0.5), _row(2, 93.0, 3e6, 1.0)]
    assert [r["trial"] for r in pick_finalists(rows, cost, 3)] == [2, 1]


def test_a_cost_target_publishes_the_fastest_plan_that_reaches_it():
    target = parse_target("macs<=5e6")
    runs = [_finalist(0, 0.2, 3.0, macs=4e6), _finalist(1, 0.3, 4.0, macs=4.5e6), _finalist(2, 0.1, 5.0, macs=6e6)]
    best, _ = choose(runs, target, 0.5)
    assert best["trial"] == 1  # reaches 5e6 MACs and is faster than trial 0; trial 2 is faster but misses the target
    best, _ = choose([_finalist(2, 0.1, 5.0, macs=6e6), _finalist(3, 0.1, 6.0, macs=7e6)], target, 0.5)
    assert best["trial"] == 2 and status_of(best, None, target) == "not met"  # none reaches it: the closest
