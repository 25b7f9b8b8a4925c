import copy

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.core.inputs import call_model
from deepslim.prune import adaptive_prune_

X = torch.randn(1, 1, 28, 28)


@pytest.fixture
def trained(trained_resnet8):
    return trained_resnet8


def _macs(model):
    return deepslim.profiling.count_ops(model, (X,)).macs


@pytest.mark.parametrize("fraction, finetune", [(0.6, 0), (0.3, 64)])
def test_adaptive_meets_the_budget_in_place(trained, fraction, finetune, tmp_path, device):
    model, data = trained
    model = copy.deepcopy(model).to(device)  # the data stays on the CPU
    base_macs = _macs(model)
    budget = fraction * base_macs
    result = adaptive_prune_(model, data.val, budget, X, calibration_images=data.train.images[:128], step=0.15,
                             train_data=data.train, finetune_images=finetune, batch_size=32)
    assert _macs(model) == result.macs <= budget and result.history[-1]["macs"] == result.macs
    assert [h["macs"] for h in result.history] == sorted((h["macs"] for h in result.history), reverse=True)
    # coupled layers carry one ratio, and the ratios are what the model now has
    assert result.ratios.get("stages.1.0.conv2") == result.ratios.get("stages.1.0.shortcut.0")
    for name, ratio in result.ratios.items():
        plan = result.plan.layers[name]
        assert plan["after"][0] == round(plan["before"][0] * (1 - ratio))
    assert result.plan.macs_after == result.macs and result.plan.params_after < result.plan.params_before
    assert call_model(model, X).shape == (1, 10)
    deepslim.save(model, tmp_path / "m")
    assert deepslim.load(tmp_path / "m")(X).shape == (1, 10)


def test_one_walk_serves_several_budgets(trained):
    model, data = trained
    model = copy.deepcopy(model)
    base_macs = _macs(model)
    result = adaptive_prune_(model, data.val, 0.4 * base_macs, X, step=0.2, milestones=(0.7 * base_macs,))
    halfway = result.model_at(0.7 * base_macs)
    assert result.macs < _macs(halfway) <= 0.7 * base_macs
    assert result.milestones[0]["macs"] == _macs(halfway)
    with pytest.raises(DeepslimError, match="no milestone"):
        result.model_at(0.9 * base_macs)


def test_adaptive_errors_leave_the_model_alone(trained):
    model, data = trained
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(DeepslimError, match="not below"):
        adaptive_prune_(model, data.val, 1e12, X)
    with pytest.raises(DeepslimError, match="step"):
        adaptive_prune_(model, data.val, 1000, X, step=0)
    with pytest.raises(DeepslimError, match="cannot reach"):
        adaptive_prune_(model, data.val, 1, X, step=0.5, max_ratio=0.3)
    with pytest.raises(DeepslimError, match="stem.9"):
        adaptive_prune_(model, data.val, 1000, X, layers=["stem.9"])
    with pytest.raises(DeepslimError, match="train_data"):
        adaptive_prune_(model, data.val, 1000, X, finetune_images=10)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
