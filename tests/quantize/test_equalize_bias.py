"""Cross-layer equalization and bias correction: exactness where promised, help at 4-bit weights."""


import pytest
import torch
from torch import nn

import deepslim
from deepslim.core.inputs import call_model
from deepslim.quantize import PTQConfig, fold_batchnorm, quantize_
from deepslim.quantize.equalize import equalize_
from deepslim.testing import tiny_data


def test_equalization_keeps_the_function_and_evens_ranges():
    torch.manual_seed(0)
    model, _ = fold_batchnorm(deepslim.create_model("fmnist-cnn"))
    with torch.no_grad():  # make channel ranges very uneven
        model[0][0].weight.mul_(torch.logspace(-2, 1, 32).reshape(-1, 1, 1, 1))
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        before = model(x)
    spread_before = model[0][0].weight.abs().amax(dim=(1, 2, 3))
    pairs = equalize_(model)
    assert ("0.0", "2.0") in pairs
    with torch.no_grad():
        assert (model(x) - before).abs().max() < 1e-4 * before.abs().max()
    spread_after = model[0][0].weight.abs().amax(dim=(1, 2, 3))
    assert spread_after.max() / spread_after.min() < spread_before.max() / spread_before.min() / 10


def test_depthwise_pairs_are_equalized_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
                          nn.Conv2d(16, 8, 1), nn.ReLU6(), nn.Conv2d(8, 8, 1))
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        before = model(x)
    pairs = equalize_(model)
    assert pairs == [("0", "2"), ("2", "4")]  # not across the ReLU6
    with torch.no_grad():
        assert (model(x) - before).abs().max() < 1e-4 * before.abs().max()


def test_bias_correction_removes_the_mean_output_shift():
    data = tiny_data(n_train=300)
    model = deepslim.create_model("fmnist-cnn")
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=1, batch_size=32, lr=0.05))
    model.eval()
    images = data.train.images[:200]
    shifts = {}
    for corrected in (False, True):
        q = quantize_(model, PTQConfig(observer="minmax", bias_correction=corrected), images, weight_bits=3)
        q0 = q[0][0]  # the first conv: its input is the image itself, identical in float and quantized
        with torch.no_grad():
            q0.quantize_input = False
            ref, _ = fold_batchnorm(model)
            shift = (call_model(q0, images) - call_model(ref[0][0], images)).mean(dim=(0, 2, 3))
        shifts[corrected] = shift.abs().mean().item()
    assert shifts[True] < 0.2 * shifts[False]


def test_configs_compose():
    with pytest.raises(deepslim.DeepslimError):
        PTQConfig(calibration_size=0)
    assert PTQConfig(equalize=True, bias_correction=True).to_dict()["equalize"] is True
