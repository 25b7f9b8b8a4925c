import pytest

from deepslim.core import DeepslimError
from deepslim.nas import AccuracyPredictor, Constraints, evolution_search, get_space


def toy_accuracy(arch) -> float:
    """Deeper stages and larger expand ratios help, with diminishing returns; kernels matter a little."""
    depth = sum(arch.depths)
    expand = sum(e for stage in arch.expands for e in stage) / depth
    kernel = sum(k for stage in arch.kernels for k in stage) / depth
    return 80.0 + 0.8 * depth + 0.6 * expand + 0.1 * kernel


@pytest.fixture(scope="module")
def space():
    return get_space("ofa-mbconv")


def records(space, seeds):
    return [{"arch": a.to_dict(), "accuracy": toy_accuracy(a)} for a in (space.sample(s) for s in seeds)]


def test_predicts_held_out_archs(space):
    predictor = AccuracyPredictor(space, hidden=(64, 64)).fit(records(space, range(300)), epochs=150)
    quality = predictor.quality(records(space, range(1000, 1100)))
    assert quality["n"] == 100 and quality["kendall_tau"] > 0.8
    spread = max(r["accuracy"] for r in records(space, range(1000, 1100))) - min(
        r["accuracy"] for r in records(space, range(1000, 1100)))
    assert quality["mean_abs_error"] < 0.15 * spread


def test_stands_in_for_the_evaluator_in_a_search(space):
    predictor = AccuracyPredictor(space, hidden=(64, 64)).fit(records(space, range(300)), epochs=150)
    judge = predictor.evaluator(lambda a: {"macs": float(sum(a.depths))})
    result = evolution_search(space, judge, budget=300, constraints=Constraints(max_macs=12), seed=0)
    assert result.feasible
    best = space.validate(result.best["arch"])
    random_best = max(toy_accuracy(space.sample(s)) for s in range(300) if sum(space.sample(s).depths) <= 12)
    assert toy_accuracy(best) >= random_best - 0.5


def test_refusals(space):
    with pytest.raises(DeepslimError, match="at least 8 judged archs"):
        AccuracyPredictor(space).fit(records(space, range(3)))
    with pytest.raises(DeepslimError, match="not trained"):
        AccuracyPredictor(space).predict([space.smallest()])
