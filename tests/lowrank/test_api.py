import copy

import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.lowrank import Factorization, RankPlan, factorize_
from deepslim.profiling.counting import count_ops
from deepslim.testing import tiny_data

X = torch.randn(1, 1, 28, 28)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return deepslim.create_model("resnet8").eval()


@pytest.mark.parametrize("method", ["svd", "spatial", "tucker"])
def test_mac_ratio_is_met_and_layer_macs_match_the_profiler(resnet, method):
    model = copy.deepcopy(resnet)
    plan = factorize_(model, Factorization(method=method, mac_ratio=0.5), X)
    assert plan.macs_after <= 0.5 * plan.macs_before
    assert plan.macs_after > 0.4 * plan.macs_before  # not far below either
    per_layer = {layer.name: layer.macs for layer in count_ops(model.eval(), (X,)).layers}
    for name, row in plan.layers.items():
        counted = sum(macs for layer, macs in per_layer.items() if layer.startswith(name + "."))
        assert counted == row["macs_after"], name
        assert row["macs_after"] < row["macs_before"]
    assert model(X).shape == (1, 10)


def test_energy_selection_keeps_at_least_that_energy(resnet, device):
    plan = factorize_(copy.deepcopy(resnet).to(device), Factorization(method="svd", energy=0.6), X)
    assert plan.layers and all(row["energy"] >= 0.6 - 1e-9 for row in plan.layers.values())
    full = factorize_(copy.deepcopy(resnet), Factorization(method="svd", energy=1.0), X)
    assert not full.layers and all("lowers its MACs" in r for r in full.skipped.values())


def test_explicit_ranks_and_head_left_alone_unless_named(resnet):
    model = copy.deepcopy(resnet)
    plan = factorize_(model, Factorization(method="tucker", ranks={"stages.1.0.conv2": [8, 6], "fc": 4}), X)
    assert plan.layers["stages.1.0.conv2"]["rank"] == [8, 6] and plan.layers["fc"]["rank"] == 4
    assert isinstance(model.fc, nn.Sequential)
    untouched = factorize_(copy.deepcopy(resnet), Factorization(method="svd", energy=0.5), X)
    assert "fc" not in untouched.layers


def test_sensitivity_selection_meets_the_budget(resnet, device):
    data = tiny_data(n_train=64)  # validation images on the CPU, the model on `device`
    model = copy.deepcopy(resnet).to(device)
    plan = factorize_(model, Factorization(method="svd", mac_ratio=0.6, selection="sensitivity"), X, val_data=data.val)
    assert plan.macs_after <= 0.6 * plan.macs_before and plan.sensitivity
    assert {"layer", "rank", "drop", "macs"} <= set(plan.sensitivity[0])


def test_factorized_model_saves_loads_and_exports(resnet, tmp_path):
    model = copy.deepcopy(resnet)
    plan = factorize_(model, Factorization(method="spatial", mac_ratio=0.5), X)
    plan.save(tmp_path / "plan")
    assert RankPlan.load(tmp_path / "plan").layers == plan.layers
    deepslim.save(model, tmp_path / "m")
    loaded = deepslim.load(tmp_path / "m").eval()
    assert torch.allclose(loaded(X), model(X), atol=1e-6)
    exported = deepslim.export_onnx(model, tmp_path / "m.onnx", X)
    assert exported["max_abs_diff"] < 1e-4
    out = deepslim.onnx_session(exported["path"]).run(None, {"input": X.numpy()})[0]
    assert abs(out - model(X).detach().numpy()).max() < 1e-4


def test_grouped_convs_are_skipped_with_a_reason():
    model = deepslim.create_model("mobilenetv2").eval()
    plan = factorize_(model, Factorization(method="svd", mac_ratio=0.9), X)
    assert any("grouped conv" in reason for reason in plan.skipped.values())
    assert model(X).shape == (1, 10)


def test_bad_input_is_refused_and_the_model_untouched(resnet):
    model = copy.deepcopy(resnet)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DeepslimError, match="out of range"):
        Factorization(energy=1.5)
    with pytest.raises(DeepslimError, match="exactly one"):
        Factorization(energy=0.5, mac_ratio=0.5)
    with pytest.raises(DeepslimError, match="no ranks reach"):
        factorize_(model, Factorization(mac_ratio=0.01), X)
    with pytest.raises(DeepslimError, match="did you mean"):
        factorize_(model, Factorization(energy=0.5, layers=["stages.1.0.conv"]), X)
    with pytest.raises(DeepslimError, match="not a conv or linear"):
        factorize_(model, Factorization(energy=0.5, layers=["stages.1.0.bn1"]), X)
    with pytest.raises(DeepslimError, match="exceeds its full rank"):
        factorize_(model, Factorization(ranks={"stem.0": 1000}), X)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
