import pytest

from deepslim.core import DeepslimError
from deepslim.nas import Constraints, RLConfig, get_space, rl_search, search


@pytest.fixture
def space():
    return get_space("ofa-mbconv")


def sevens(arch) -> dict:
    """A toy objective: the share of 7x7 kernels, in %; 'macs' grows with depth."""
    kernels = [k for stage in arch.kernels for k in stage]
    return {"accuracy": 100.0 * sum(k == 7 for k in kernels) / len(kernels), "macs": float(sum(arch.depths))}


def test_budget_counts_distinct_archs_and_a_seed_repeats_the_search(space):
    a = rl_search(space, sevens, budget=12, seed=3)
    b = rl_search(space, sevens, budget=12, seed=3)
    assert a.strategy == "rl" and len(a.history) == 12
    assert len({str(h["arch"]) for h in a.history}) == 12
    assert [h["arch"] for h in a.history] == [h["arch"] for h in b.history]
    assert a.history != rl_search(space, sevens, budget=12, seed=4).history
    rows = a.extras["controller"]
    assert len(rows) >= 12 and sum(r["new"] for r in rows) == 12
    assert all(r["entropy"] > 0 for r in rows)


def test_the_controller_learns_a_toy_objective(space):
    config = RLConfig(lr=0.05, samples_per_update=5)
    rows = rl_search(space, sevens, budget=60, config=config, seed=0).extras["controller"]
    # a random policy picks 7x7 for a third of the kernels (33% +- 4 over 20 samples)
    assert sum(r["accuracy"] for r in rows[-20:]) / 20 > 85


def test_constraints_are_learned_through_the_penalty(space):
    config = RLConfig(lr=0.05, samples_per_update=5, penalty_weight=5.0)
    result = rl_search(space, sevens, budget=60, constraints=Constraints(max_macs=10), config=config, seed=0)
    rows = result.extras["controller"]
    assert result.feasible and result.best["macs"] <= 10
    assert sum(r["violation"] == 0 for r in rows[-20:]) >= 15  # 15 of 81 depth choices are feasible at random


def test_dispatch_and_refusals(space):
    assert search("rl", space, sevens, 5, seed=0).strategy == "rl"
    with pytest.raises(DeepslimError, match="too small for one controller step"):
        rl_search(space, sevens, budget=3, config=RLConfig(samples_per_update=4))
    with pytest.raises(DeepslimError, match="evolution, random, rl"):
        search("reinforce", space, sevens, 5)
    with pytest.raises(DeepslimError, match="baseline_decay"):
        RLConfig(baseline_decay=1.0)
