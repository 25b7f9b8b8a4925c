import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.quantize import LowBitConfig, LowBitLayer, freeze_lowbit_, lowbit_
from deepslim.quantize.lowbit import binarize_weight, ternarize_weight
from deepslim.testing import tiny_data


def test_binary_and_ternary_weight_values():
    w = torch.randn(8, 4, 3, 3)
    b = binarize_weight(w)
    for row, orig in zip(b.reshape(8, -1), w.reshape(8, -1)):
        assert len(torch.unique(row.abs())) == 1 and torch.allclose(row.abs()[0], orig.abs().mean())
    t = ternarize_weight(w)
    assert all(len(torch.unique(row)) <= 3 for row in t.reshape(8, -1))
    assert ((t == 0) == (w.abs() <= 0.7 * w.abs().reshape(8, -1).mean(1).reshape(8, 1, 1, 1))).all()


@pytest.mark.parametrize("mode", ["binary", "ternary"])
def test_low_bit_training_learns_and_saves_in_bits(mode, tmp_path):
    data = tiny_data(n_train=400)
    model = deepslim.create_model("fmnist-cnn")
    wrapped = lowbit_(model, LowBitConfig(mode=mode))
    assert wrapped == ["2.0", "4.0", "7"]
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=3, batch_size=32, optimizer="adamw", lr=3e-3))
    accuracy = deepslim.evaluate(model, data.test)["accuracy"]
    assert accuracy > 60
    model.cpu().eval()  # load gives a CPU model: compare like with like
    with torch.no_grad():
        before = model(data.test.images)
    assert freeze_lowbit_(model) == 3
    deepslim.save(model, tmp_path / mode)
    loaded = deepslim.load(tmp_path / mode)
    with torch.no_grad():
        assert torch.allclose(loaded(data.test.images), before, atol=1e-5)
    # the big Linear (7: 1152 x 256) is stored in 1 bit (binary) or 2 bits (ternary) plus a codebook
    from safetensors import safe_open

    with safe_open(str(tmp_path / mode / "weights.safetensors"), "pt") as fh:
        stored = sum(fh.get_tensor(k).numel() * fh.get_tensor(k).element_size() for k in fh.keys() if k.startswith("7."))
    dense = model[7].layer.weight.numel() * 4 + model[7].layer.bias.numel() * 4
    assert stored <= dense / (16 if mode == "binary" else 8)


def test_binary_activations_pass_gradients_inside_the_clip():
    layer = LowBitLayer("linear", "binary", binary_activations=True)
    layer.layer = torch.nn.Linear(4, 2)
    x = torch.tensor([[0.5, -0.5, 2.0, -2.0]], requires_grad=True)
    layer(x).sum().backward()
    assert (x.grad[0, 2:] == 0).all() and (x.grad[0, :2] != 0).all()
    assert layer.layer.weight.grad is not None


def test_bad_mode():
    with pytest.raises(DeepslimError, match="LowBitConfig.mode"):
        LowBitConfig(mode="quaternary")
