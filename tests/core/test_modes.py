import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import eval_mode, train_mode


def _frozen_bn_model():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(1, 1, 8, 8))  # materialise the lazy layer
    model.train()
    model[1].eval()  # the user froze the BatchNorm while fine-tuning the rest
    return model


def test_each_module_gets_its_own_mode_back_even_after_an_error():
    model = _frozen_bn_model()
    with pytest.raises(RuntimeError), eval_mode(model):
        assert not any(m.training for m in model.modules())
        raise RuntimeError("a failure inside")
    assert model.training and model[0].training and not model[1].training
    model.eval()
    with train_mode(model):
        assert all(m.training for m in model.modules())
    assert not any(m.training for m in model.modules())


def test_replaced_and_added_modules_take_the_mode_their_place_had():
    model = _frozen_bn_model()
    with eval_mode(model):
        model[1] = nn.BatchNorm2d(4)  # replaced (as a pruner or a restore does): frozen like the one it replaces
        model[0] = nn.Sequential(nn.Conv2d(1, 4, 3))  # added below a known name: the name's mode
    assert not model[1].training and model[0].training and model[0][0].training


def test_measuring_a_model_keeps_a_frozen_batchnorm_frozen(tmp_path):
    model = _frozen_bn_model()
    deepslim.profile(model, torch.randn(1, 1, 8, 8))
    deepslim.export_onnx(model, tmp_path / "m.onnx", torch.randn(1, 1, 8, 8))
    assert model.training and model[0].training and not model[1].training
