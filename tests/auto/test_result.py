from deepslim.auto.result import choose, pareto_front, status_of
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


def test_a_cost_target_publishes_the_fastest_plan_that_reaches_it():
    target = parse_target("macs<=5e6")
    runs = [_finalist(0, 0.2, 3.0, macs=4e6), _finalist(1, 0.3, 4.0, macs=4.5e6), _finalist(2, 0.1, 5.0, macs=6e6)]
    best, _ = choose(runs, target, 0.5)
    assert best["trial"] == 1  # reaches 5e6 MACs and is faster than trial 0; trial 2 is faster but misses the target
    best, _ = choose([_finalist(2, 0.1, 5.0, macs=6e6), _finalist(3, 0.1, 6.0, macs=7e6)], target, 0.5)
    assert best["trial"] == 2 and status_of(best, None, target) == "not met"  # none reaches it: the closest


def test_of_keepers_as_fast_within_the_timing_noise_the_more_accurate_is_published():
    target = parse_target("speedup>=6")
    # a plan and its longer fine-tune: 3.02x and 3.00x are one speed; the longer run lost less
    best, _ = choose([_finalist(0, 0.45, 3.02), _finalist(0, 0.30, 3.00)], target, 0.5)
    assert best["measured"]["drop"] == 0.30
    best, _ = choose([_finalist(0, 0.45, 3.20), _finalist(1, 0.30, 3.00)], target, 0.5)
    assert best["trial"] == 0  # 7% faster: faster wins
    best, _ = choose([_finalist(2, 0.4, 6.5), _finalist(3, 0.1, 5.9)], target, 0.5)
    assert best["trial"] == 2  # only one reaches the target
    macs = parse_target("macs<=5e6")  # ranked by MACs: a tie is the same count
    best, _ = choose([_finalist(4, 0.4, 3.0, macs=6e6), _finalist(4, 0.2, 2.9, macs=6e6)], macs, 0.5)
    assert best["measured"]["drop"] == 0.2
