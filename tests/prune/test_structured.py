"""Structured channel pruning keeps output shapes on every graph shape and really shrinks the model."""

import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.prune import ChannelPruning, prune_
from deepslim.testing import ToyResidual

X = torch.randn(2, 1, 28, 28)

GRAPHS = {
    "residual (resnet8)": lambda: deepslim.create_model("resnet8"),
    "depthwise + inverted residual (mobilenetv2)": lambda: deepslim.create_model("mobilenetv2", width_mult=0.5),
    "concat / Fire modules (squeezenet)": lambda: deepslim.create_model("squeezenet"),
    "flatten -> linear (fmnist-cnn)": lambda: deepslim.create_model("fmnist-cnn"),
    "transformer encoder (vit-tiny)": lambda: deepslim.create_model("vit-tiny"),
    "residual + concat (toy)": lambda: ToyResidual(),
    "grouped conv": lambda: nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1, groups=4),
                                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)),
}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_channel_pruning_shrinks_and_keeps_shapes(graph, tmp_path):
    torch.manual_seed(0)
    model = GRAPHS[graph]().eval()
    plan = prune_(model, ChannelPruning(ratio=0.5), example_inputs=X)
    assert plan.layers, "nothing was pruned"
    assert plan.params_after < plan.params_before and plan.macs_after < plan.macs_before
    out = model(X)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    # an ordinary dense model: saves, reloads identically and exports to ONNX
    deepslim.save(model, tmp_path / "pruned")
    loaded = deepslim.load(tmp_path / "pruned")
    assert torch.equal(loaded(X), out)
    assert deepslim.export_onnx(model, tmp_path / "pruned.onnx", X)["max_abs_diff"] < 1e-4


def test_half_ratio_roughly_quarters_resnet_macs():
    model = deepslim.create_model("resnet8").eval()
    plan = prune_(model, ChannelPruning(ratio=0.5), example_inputs=X)
    # both sides of most convs halve, so MACs fall to about a quarter
    assert 0.2 < plan.macs_after / plan.macs_before < 0.35


def test_per_layer_ratio_zero_keeps_a_layer_and_round_to():
    model = deepslim.create_model("fmnist-cnn").eval()
    plan = prune_(model, ChannelPruning(ratio=0.5, round_to=8, per_layer={"0.0": 0}), example_inputs=X)
    assert model[0][0].out_channels == 32
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, nn.Conv2d))
    assert "0.0" not in plan.layers


@pytest.mark.parametrize("importance", ["l1", "l2", "bn_scale", "fpgm", "random"])
def test_every_importance_runs(importance, device):
    model = deepslim.create_model("resnet8").eval().to(device)
    prune_(model, ChannelPruning(ratio=0.25, importance=importance), example_inputs=X)  # X stays on the CPU
    assert model(X.to(device)).shape == (2, 10)
    assert all(p.device.type == device.type for p in model.parameters())


def test_taylor_needs_data_and_uses_it(device):
    model = deepslim.create_model("resnet8").to(device)
    with pytest.raises(DeepslimError, match="needs data"):
        prune_(model, ChannelPruning(ratio=0.25, importance="taylor"), example_inputs=X)
    assert model.stem[0].out_channels == 16  # untouched after the failure
    prune_(model, ChannelPruning(ratio=0.25, importance="taylor"), example_inputs=X,
           data=(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))))  # CPU data, model on `device`
    assert model(X.to(device)).shape == (2, 10)


def test_bad_input_leaves_model_untouched():
    model = deepslim.create_model("resnet8")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DeepslimError, match=r"ratio = 1.0 is out of range"):
        ChannelPruning(ratio=1.0)
    with pytest.raises(DeepslimError, match=r"no layer 'stem.O'.*did you mean"):
        prune_(model, ChannelPruning(ratio=0.5, per_layer={"stem.O": 0.2}), example_inputs=X)
    with pytest.raises(DeepslimError, match="needs example_inputs"):
        prune_(model, ChannelPruning(ratio=0.5))
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
