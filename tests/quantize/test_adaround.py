"""AdaRound: every weight to its floor or ceiling, the regulariser settles the soft values, the
decisions survive both int8 paths, and bad input is refused clearly."""

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.quantize import AdaRoundConfig, PTQConfig, adaround_model, adaround_weights_, export_int8, quantize_
from deepslim.quantize.adaround import (
    _Grid,
    _optimise_layer,
    adaround_is_exact,
    annealed_beta,
    initial_v,
    rectified_sigmoid,
    settled_share,
)
from deepslim.quantize.folding import fold_batchnorm
from deepslim.testing import tiny_data


@pytest.fixture(scope="module")
def trained():
    data = tiny_data(n_train=400)
    model = deepslim.create_model("resnet8")
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=3, batch_size=32, lr=0.05))
    return model.eval(), data


def test_rectified_sigmoid_reaches_0_and_1_and_starts_at_the_float_weight():
    assert rectified_sigmoid(torch.tensor([-10.0, 10.0])).tolist() == [0.0, 1.0]
    rest = torch.tensor([0.01, 0.25, 0.5, 0.99])
    assert torch.allclose(rectified_sigmoid(initial_v(rest)), rest, atol=1e-5)


def test_beta_is_off_during_warmup_then_anneals_from_start_to_end():
    config = AdaRoundConfig(iterations=100, warmup=0.2, beta_start=20.0, beta_end=2.0)
    assert annealed_beta(19, config) is None
    assert annealed_beta(20, config) == pytest.approx(20.0)
    assert annealed_beta(99, config) == pytest.approx(2.0, abs=0.3)
    assert annealed_beta(60, config) < annealed_beta(40, config)


@pytest.mark.parametrize("bits", [8, 4])
def test_every_weight_moves_to_its_floor_or_ceiling(trained, bits):
    model, data = trained
    folded = fold_batchnorm(model)[0]
    original = {n: m.weight.detach().clone() for n, m in folded.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    batches = [data.train.images[i:i + 64] for i in range(0, 256, 64)]
    report = adaround_weights_(folded, batches, AdaRoundConfig(iterations=60), bits=bits)
    assert sorted(report["layers"]) == sorted(original) and not report["nearest"]
    modules = dict(folded.named_modules())
    changed = 0
    for name, weight in original.items():
        rounded = modules[name].weight.detach()
        assert adaround_is_exact(rounded, weight, bits=bits), name
        grid = _Grid(weight, bits, per_channel=True)
        changed += int((rounded != grid.nearest()).sum())
    assert changed > 0, "AdaRound made exactly the round-to-nearest decisions everywhere"
    # the learned rounding lowers the layers' output error on the data it saw, taken together
    errors = report["layers"].values()
    assert sum(r["adaround_error"] for r in errors) < sum(r["nearest_error"] for r in errors)


def test_the_regulariser_drives_the_soft_values_to_0_or_1():
    torch.manual_seed(0)
    layer = nn.Linear(32, 16)
    x = [torch.randn(256, 32)]
    grid = _Grid(layer.weight, 4, per_channel=True)
    settled = {}
    for weight in (0.0, 0.01):
        config = AdaRoundConfig(iterations=1500, lr=1e-2, reg_weight=weight)
        v = _optimise_layer(layer, grid, x, x, config, torch.Generator().manual_seed(0), "test")
        settled[weight] = settled_share(v)
    assert settled[0.01] >= 0.95, settled
    assert settled[0.0] < settled[0.01] - 0.2, settled


def test_onnx_int8_keeps_the_learned_decisions(trained, tmp_path):
    """The exported int8 weights are exactly the AdaRound codes: ONNX Runtime's round-to-nearest is
    the identity on weights already on its grid."""
    model, data = trained
    config = PTQConfig(rounding="adaround", adaround_iterations=40, calibration_size=128)
    rounded, report, rest = adaround_model(model, config, data.train)
    assert rest.rounding == "nearest" and not rest.fold_bn
    info = export_int8(rounded, data.train, tmp_path / "m.onnx", rest)
    assert len(info["quantized_nodes"]) == 10
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    modules = dict(rounded.named_modules())
    for name in report["layers"]:
        weight = modules[name].weight.detach().cpu()
        grid = _Grid(weight, 8, per_channel=True)
        expected = torch.round(weight / grid.scale).numpy().astype(np.int8)
        assert np.array_equal(tensors[f"{name}.weight_quantized"], expected), name
        assert np.allclose(tensors[f"{name}.weight_scale"], grid.scale.reshape(-1).numpy(), rtol=1e-6)


def test_export_int8_rounds_by_itself_and_reports(trained, tmp_path):
    model, data = trained
    info = export_int8(model, data.train, tmp_path / "a.onnx",
                       PTQConfig(rounding="adaround", adaround_iterations=20, calibration_size=128))
    assert len(info["adaround"]["layers"]) == 10 and info["adaround"]["bits"] == 8


def test_unsupported_layers_are_named_and_kept_at_nearest():
    class WithAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 8)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            h = self.proj(x)
            return self.attn(h, h, h, need_weights=False)[0]

    torch.manual_seed(0)
    model = WithAttention().eval()
    before = model.attn.in_proj_weight.detach().clone()
    report = adaround_weights_(model, [torch.randn(64, 4, 8)], AdaRoundConfig(iterations=10))
    assert "proj" in report["layers"]
    assert "attn" in report["nearest"] and "functionally" in report["nearest"]["attn"]
    assert "attn.out_proj" in report["nearest"]
    assert torch.equal(model.attn.in_proj_weight, before)


def test_bad_input_is_clear(trained, tmp_path):
    model, data = trained
    with pytest.raises(DeepslimError, match="positive integer"):
        PTQConfig(rounding="adaround", adaround_iterations=0)
    with pytest.raises(DeepslimError, match="positive integer"):
        AdaRoundConfig(iterations=-5)
    with pytest.raises(DeepslimError, match="rounding"):
        PTQConfig(rounding="stochastic")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DeepslimError, match="at least 64 calibration samples, got 32"):
        quantize_(model, PTQConfig(rounding="adaround", calibration_size=32), data.train)
    with pytest.raises(DeepslimError, match="at least 64 calibration samples"):
        export_int8(model, data.train.images[:40], tmp_path / "x.onnx", PTQConfig(rounding="adaround"))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not (tmp_path / "x.onnx").exists()
