import pytest

from deepslim.core import DeepslimError
from deepslim.nas import hypervolume, pareto_front


def test_front_keeps_only_undominated_points_by_cost():
    points = [{"ms": 3.0, "accuracy": 93.0}, {"ms": 1.0, "accuracy": 90.0}, {"ms": 2.0, "accuracy": 89.0},
              {"ms": 2.0, "accuracy": 92.0}, {"ms": 4.0, "accuracy": 92.5}]
    assert [(p["ms"], p["accuracy"]) for p in pareto_front(points, cost="ms")] == [(1.0, 90.0), (2.0, 92.0),
                                                                                    (3.0, 93.0)]


def test_hypervolume_sums_the_strips_to_the_reference():
    points = [{"ms": 1.0, "accuracy": 90.0}, {"ms": 2.0, "accuracy": 92.0}]
    assert hypervolume(points, cost="ms", reference=(4.0, 80.0)) == pytest.approx(1 * 10 + 2 * 12)


def test_dominated_and_outside_points_add_nothing():
    base = [{"ms": 1.0, "accuracy": 90.0}]
    more = base + [{"ms": 1.5, "accuracy": 89.0}, {"ms": 5.0, "accuracy": 99.0}, {"ms": 0.5, "accuracy": 70.0}]
    assert hypervolume(more, cost="ms", reference=(4.0, 80.0)) == hypervolume(base, cost="ms", reference=(4.0, 80.0))


def test_a_better_front_has_a_larger_hypervolume():
    worse = [{"macs": 2.0, "accuracy": 90.0}]
    better = [{"macs": 1.0, "accuracy": 90.0}]
    assert hypervolume(better, cost="macs", reference=(3.0, 80.0)) > hypervolume(worse, cost="macs", reference=(3.0, 80.0))


def test_no_points_is_refused():
    with pytest.raises(DeepslimError, match="no points"):
        hypervolume([], cost="ms", reference=(1.0, 0.0))
