"""Invariants of unstructured pruning: exact sparsity, masks only shrink, N:M pattern, masks kept in training."""

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.prune import KeepMasked, MagnitudePruning, NMSparsity, RandomPruning, prune_
from deepslim.testing import tiny_data
from deepslim.train import TrainConfig, Trainer


def weight_sparsity(model, names):
    modules = dict(model.named_modules())
    zeros = sum(int((modules[n].weight == 0).sum()) for n in names)
    return zeros / sum(modules[n].weight.numel() for n in names)


@pytest.mark.parametrize("cfg", [MagnitudePruning(0.7), MagnitudePruning(0.7, scope="global"), RandomPruning(0.7)])
def test_pruned_fraction_matches_target(cfg):
    model = deepslim.create_model("fmnist-cnn")
    plan = prune_(model, cfg)
    assert abs(plan.masks.sparsity() - 0.7) < 1e-3
    assert abs(weight_sparsity(model, plan.masks.masks) - 0.7) < 1e-3
    if cfg.scope == "layer":
        for name, s in plan.masks.layer_sparsity().items():  # exact up to rounding to whole weights
            assert abs(s - 0.7) <= 0.5 / plan.masks.masks[name].numel() + 1e-9
    assert "9" not in plan.masks.masks  # the classifier head is skipped by default


def test_global_scope_prunes_layers_unevenly_by_magnitude():
    model = deepslim.create_model("lenet5")
    with torch.no_grad():
        model[3].weight.mul_(100)  # this layer's weights are now the largest
    plan = prune_(model, MagnitudePruning(0.5, scope="global"))
    per_layer = plan.masks.layer_sparsity()
    assert per_layer["3"] < 0.01 and per_layer["7"] > 0.5


def test_magnitude_keeps_the_largest_weights():
    model = deepslim.create_model("lenet5")
    original = model[7].weight.detach().clone()
    plan = prune_(model, MagnitudePruning(0.5), layers={"7": MagnitudePruning(0.5), ".*": None})
    kept = original[plan.masks.masks["7"]].abs()
    dropped = original[~plan.masks.masks["7"]].abs()
    assert kept.min() >= dropped.max()
    assert set(plan.masks.masks) == {"7"}


def test_masks_only_shrink_across_rounds():
    model = deepslim.create_model("lenet5")
    plan = prune_(model, MagnitudePruning(0.5))
    previous = {k: v.clone() for k, v in plan.masks.masks.items()}
    with torch.no_grad():  # training would move weights; make a pruned weight the largest
        model[3].weight.add_(torch.randn_like(model[3].weight))
    plan2 = prune_(model, MagnitudePruning(0.8), masks=plan.masks)
    for name, mask in plan2.masks.masks.items():
        assert not (mask & ~previous[name]).any(), "a pruned weight came back"
    assert abs(plan2.masks.sparsity() - 0.8) < 1e-3


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (2, 8)])
def test_nm_pattern_holds_in_every_group(n, m):
    model = deepslim.create_model("fmnist-cnn")
    plan = prune_(model, NMSparsity(n, m))
    for name, mask in plan.masks.masks.items():
        rows = mask.reshape(mask.shape[0], -1)
        full = rows.shape[1] // m * m
        groups = rows[:, :full].reshape(rows.shape[0], -1, m)
        assert (groups.sum(-1) == n).all(), name


def test_masks_are_kept_through_training():
    data = tiny_data(n_train=128)
    model = deepslim.create_model("lenet5")
    plan = prune_(model, MagnitudePruning(0.6))
    Trainer(model, TrainConfig(epochs=1, batch_size=32, lr=0.05, weight_decay=1e-3),
            callbacks=[KeepMasked(plan.masks)]).fit(data.train)
    assert abs(weight_sparsity(model, plan.masks.masks) - 0.6) < 1e-3


def test_plan_saves_and_loads(tmp_path):
    model = deepslim.create_model("lenet5")
    plan = prune_(model, MagnitudePruning(0.5))
    plan.save(tmp_path / "plan")
    again = type(plan).load(tmp_path / "plan")
    assert again.config == plan.config
    assert all(torch.equal(again.masks.masks[k], v) for k, v in plan.masks.masks.items())


def test_bad_input():
    with pytest.raises(DeepslimError, match=r"sparsity = 1.0 is out of range"):
        MagnitudePruning(1.0)
    with pytest.raises(DeepslimError, match="MagnitudePruning.scope"):
        MagnitudePruning(0.5, scope="model")
    model = deepslim.create_model("lenet5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DeepslimError, match=r"no layer 'fc1'"):
        prune_(model, MagnitudePruning(0.5), layers={"fc1": MagnitudePruning(0.5)})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
