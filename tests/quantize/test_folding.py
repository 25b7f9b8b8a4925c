import torch
from torch import nn

import deepslim
from deepslim.quantize.folding import fold_batchnorm
from deepslim.testing import ToyResidual


def randomise_bn(model):
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_folding_is_exact_on_every_bn_model():
    x = torch.randn(4, 1, 28, 28)
    for name in ("resnet8", "fmnist-cnn", "mobilenetv2"):
        model = randomise_bn(deepslim.create_model(name))
        folded, names = fold_batchnorm(model)
        bns = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
        assert sorted(names) == sorted(bns), name
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        with torch.no_grad():
            assert (folded(x) - model(x)).abs().max() < 1e-5, name


def test_bn_not_fed_only_by_a_conv_is_left_alone():
    model = randomise_bn(ToyResidual())
    model.stem[1] = nn.BatchNorm2d(8)  # stem: conv -> bn -> relu (foldable)
    folded, names = fold_batchnorm(model)
    assert "stem.1" in names and "body.1" in names
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert (folded(x) - model.eval()(x)).abs().max() < 1e-5


def test_input_model_is_untouched():
    model = deepslim.create_model("resnet8").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fold_batchnorm(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
