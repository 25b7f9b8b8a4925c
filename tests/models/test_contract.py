"""Contract over every registered model: shape, finiteness, save/load and ONNX parity."""

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.models import list_models


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_for_any_channels_and_classes(name):
    torch.manual_seed(0)
    for channels, classes in ((1, 10), (3, 7)):
        model = deepslim.create_model(name, in_channels=channels, num_classes=classes).eval()
        out = model(torch.randn(3, channels, 28, 28))
        assert out.shape == (3, classes)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_backward_reaches_every_parameter(name):
    model = deepslim.create_model(name).train()
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


@pytest.mark.parametrize("name", list_models())
def test_save_load_gives_identical_outputs(name, tmp_path):
    torch.manual_seed(0)
    model = deepslim.create_model(name, num_classes=5).eval()
    x = torch.randn(2, 1, 28, 28)
    deepslim.save(model, tmp_path / name)
    loaded = deepslim.load(tmp_path / name)
    assert type(loaded) is type(model)
    assert torch.equal(model(x), loaded(x))
    assert loaded.deepslim_metadata["model"] == name
    assert loaded.deepslim_metadata["model_kwargs"] == {"num_classes": 5}


@pytest.mark.parametrize("name", list_models())
def test_onnx_matches_pytorch(name, tmp_path):
    torch.manual_seed(0)
    model = deepslim.create_model(name).eval()
    result = deepslim.export_onnx(model, tmp_path / f"{name}.onnx", torch.randn(2, 1, 28, 28))
    assert result["max_abs_diff"] < 1e-4
    # the batch axis is dynamic
    session = deepslim.onnx_session(tmp_path / f"{name}.onnx")
    x = torch.randn(5, 1, 28, 28)
    got = deepslim.export.run_onnx(session, x)
    with torch.inference_mode():
        assert abs(torch.from_numpy(got) - model(x)).max().item() < 1e-4


def test_unknown_model_and_option_are_clear_errors():
    with pytest.raises(DeepslimError) as err:
        deepslim.create_model("resnet-50")
    assert "resnet" in err.value.hint
    with pytest.raises(DeepslimError, match="no option 'widht'"):
        deepslim.create_model("resnet8", widht=4)
    with pytest.raises(DeepslimError, match="must be a positive integer"):
        deepslim.create_model("lenet5", num_classes=0)
