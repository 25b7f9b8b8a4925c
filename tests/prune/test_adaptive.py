import copy

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.prune import adaptive_ratios, coupled_groups, prune_adaptive
from deepslim.testing import tiny_data

X = torch.randn(1, 1, 28, 28)


@pytest.fixture(scope="module")
def trained():
    data = tiny_data(n_train=300)
    model = deepslim.create_model("resnet8")
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=1, batch_size=32, lr=0.05))
    return model, data


def test_coupled_groups_follow_the_residual_adds(trained):
    model, _ = trained
    groups = coupled_groups(model, X)
    # the stem feeds stage 0's residual add; stage 1's second conv and its shortcut add together
    members = {frozenset(m) for m in groups.values()}
    assert frozenset({"stem.0", "stages.0.0.conv2"}) in members
    assert frozenset({"stages.1.0.conv2", "stages.1.0.shortcut.0"}) in members
    assert all("fc" not in m for m in members)


@pytest.mark.parametrize("fraction", [0.6, 0.3])
def test_adaptive_meets_the_budget_and_leaves_the_model_alone(trained, fraction):
    model, data = trained
    before = copy.deepcopy(model.state_dict())
    base_macs = deepslim.profiling.count_ops(model, (X,)).macs
    budget = fraction * base_macs
    result = adaptive_ratios(model, data.val, budget, X, calibration_images=data.train.images[:128], step=0.15)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.macs <= budget and result.history[-1]["macs"] == result.macs
    assert [h["macs"] for h in result.history] == sorted((h["macs"] for h in result.history), reverse=True)
    # coupled layers carry one ratio
    assert result.ratios.get("stages.1.0.conv2") == result.ratios.get("stages.1.0.shortcut.0")
    pruned = copy.deepcopy(model)
    plan = prune_adaptive(pruned, result, X)
    assert plan.macs_after == result.macs
    assert pruned(X).shape == (1, 10)


def test_adaptive_errors(trained):
    model, data = trained
    with pytest.raises(DeepslimError, match="not below"):
        adaptive_ratios(model, data.val, 1e12, X)
    with pytest.raises(DeepslimError, match="step"):
        adaptive_ratios(model, data.val, 1000, X, step=0)
    with pytest.raises(DeepslimError, match="cannot reach"):
        adaptive_ratios(model, data.val, 1, X, step=0.5, max_ratio=0.3)
    with pytest.raises(DeepslimError, match="stem.9"):
        adaptive_ratios(model, data.val, 1000, X, layers=["stem.9"])


def test_one_walk_serves_several_budgets(trained):
    model, data = trained
    base_macs = deepslim.profiling.count_ops(model, (X,)).macs
    result = adaptive_ratios(model, data.val, 0.4 * base_macs, X, step=0.2, milestones=(0.7 * base_macs,))
    halfway = result.at(0.7 * base_macs)
    assert result.macs < halfway.macs <= 0.7 * base_macs
    assert halfway.history and halfway.history[-1]["macs"] == halfway.macs
    pruned = copy.deepcopy(model)
    assert prune_adaptive(pruned, halfway, X).macs_after == halfway.macs
    with pytest.raises(DeepslimError, match="no milestone"):
        result.at(0.9 * base_macs)
