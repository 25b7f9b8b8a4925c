import statistics

import pytest

from deepslim.core import DeepslimError
from deepslim.nas import Constraints, Evaluator, evolution_search, get_space, random_search, search
from deepslim.testing import tiny_data

SPACE = get_space("ofa-mbconv")


def toy_metrics(arch):
    """A cheap stand-in for an evaluator: bigger kernels/expands score higher but cost MACs."""
    size = sum(k * e * 1e4 for ks, es in zip(arch.kernels, arch.expands) for k, e in zip(ks, es))
    score = sum(k + 2 * e for ks, es in zip(arch.kernels, arch.expands) for k, e in zip(ks, es))
    return {"accuracy": float(score), "macs": size, "params": size / 10}


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_budget_history_and_determinism(strategy):
    limit = Constraints(max_macs=2e6)
    a = search(strategy, SPACE, toy_metrics, 40, limit, seed=3)
    b = search(strategy, SPACE, toy_metrics, 40, limit, seed=3)
    c = search(strategy, SPACE, toy_metrics, 40, limit, seed=4)
    assert len(a.history) == 40 and len({str(h["arch"]) for h in a.history}) == 40
    assert [h["arch"] for h in a.history] == [h["arch"] for h in b.history]
    assert [h["arch"] for h in a.history] != [h["arch"] for h in c.history]
    feasible = [h for h in a.history if h["macs"] <= 2e6]
    assert a.feasible and a.best["macs"] <= 2e6
    assert a.best["accuracy"] == max(h["accuracy"] for h in feasible)
    assert a.best_arch == SPACE.validate(a.best["arch"])


def test_evolution_beats_random_at_equal_budget():
    limit = Constraints(max_macs=1.5e6)
    evo = [evolution_search(SPACE, toy_metrics, 150, limit, seed=s).best["accuracy"] for s in range(3)]
    rnd = [random_search(SPACE, toy_metrics, 150, limit, seed=s).best["accuracy"] for s in range(3)]
    assert statistics.mean(evo) > statistics.mean(rnd)


def test_unmeetable_constraint_returns_the_closest():
    result = evolution_search(SPACE, toy_metrics, 20, Constraints(max_macs=1.0, max_params=1e9), population=5,
                              sample_size=2, seed=0)
    assert not result.feasible and "closest" in result.message and "macs" in result.message
    assert result.best["violation"] == min(h["violation"] for h in result.history)


def test_any_subset_of_constraints():
    def with_latency(arch):
        return {**toy_metrics(arch), "latency_ms": sum(arch.depths) * 0.5}
    result = random_search(SPACE, with_latency, 30, Constraints(max_latency_ms=6.0, max_params=2e5), seed=0)
    assert result.feasible and result.best["latency_ms"] <= 6.0 and result.best["params"] <= 2e5
    unconstrained = random_search(SPACE, toy_metrics, 30, seed=0)
    assert unconstrained.best["accuracy"] == max(h["accuracy"] for h in unconstrained.history)


def test_bad_input():
    with pytest.raises(DeepslimError, match="latency_ms"):
        random_search(SPACE, toy_metrics, 3, Constraints(max_latency_ms=1.0))
    with pytest.raises(DeepslimError, match="budget"):
        random_search(SPACE, toy_metrics, 0)
    with pytest.raises(DeepslimError, match="sample_size"):
        evolution_search(SPACE, toy_metrics, 5, population=3, sample_size=4)
    with pytest.raises(DeepslimError, match="max_macs"):
        Constraints(max_macs=-1)
    with pytest.raises(DeepslimError, match="unknown search strategy"):
        search("annealing", SPACE, toy_metrics, 3)


def test_evolution_with_a_real_evaluator(tiny_supernet):
    data = tiny_data(n_train=120)
    judge = Evaluator(tiny_supernet, data.train, data.val, calibration_size=32)
    limit = judge(tiny_supernet.space.largest()).macs * 0.6
    result = evolution_search(tiny_supernet.space, judge, 6, Constraints(max_macs=limit), population=3,
                              sample_size=2, mutation_probability=0.3, seed=0)
    assert len(result.history) == 6 and judge.evaluations == 7
    assert result.feasible == (result.best["macs"] <= limit)
    assert set(result.best) >= {"arch", "accuracy", "macs", "params", "latency_ms"}
