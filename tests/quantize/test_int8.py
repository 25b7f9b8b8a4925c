"""Static int8 export: integer kernels in ONNX Runtime, agreement with PyTorch, clear errors."""

import numpy as np
import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.core.inputs import call_model
from deepslim.quantize.config import PTQConfig
from deepslim.quantize.int8 import executed_integer_ops, export_int8
from deepslim.testing import tiny_data


@pytest.fixture(scope="module")
def trained():
    data = tiny_data(n_train=400)
    model = deepslim.create_model("resnet8")
    # trained to confident predictions, so top-1 agreement measures quantization, not coin flips
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=4, batch_size=32, lr=0.05))
    return model.eval(), data


@pytest.mark.parametrize("observer", ["minmax", "percentile", "mse", "entropy"])
def test_int8_runs_integer_kernels_and_agrees_with_pytorch(trained, tmp_path, observer):
    model, data = trained
    path = tmp_path / "int8.onnx"
    info = export_int8(model, data.train, path, PTQConfig(observer=observer, calibration_size=128))
    assert len(info["quantized_nodes"]) == 10 and not info["kept_float"]
    ops = executed_integer_ops(path)
    assert ops.get("QLinearConv", 0) == 9, ops
    logits = deepslim.onnx_session(path).run(None, {"input": data.test.images.numpy()})[0]
    with torch.no_grad():
        reference = call_model(model, data.test.images).argmax(1).cpu().numpy()  # the model is on the suite's device
    assert np.mean(logits.argmax(1) == reference) >= 0.99


def test_int8_file_is_about_a_quarter(trained, tmp_path):
    model, data = trained
    deepslim.export_onnx(model, tmp_path / "fp32.onnx", data.test.images[:1])
    export_int8(model, data.train, tmp_path / "int8.onnx", PTQConfig(calibration_size=64))
    ratio = (tmp_path / "int8.onnx").stat().st_size / (tmp_path / "fp32.onnx").stat().st_size
    assert ratio < 0.4


def test_layers_kept_in_float_by_name(trained, tmp_path):
    model, data = trained
    info = export_int8(model, data.train, tmp_path / "m.onnx", PTQConfig(keep_float=["fc", "stem.0"], calibration_size=64))
    assert sorted(info["kept_float"]) == ["/fc/Gemm", "/stem/stem.0/Conv"]
    assert executed_integer_ops(tmp_path / "m.onnx").get("QLinearConv") == 8


def test_bad_input_is_clear_and_leaves_the_model_alone(trained, tmp_path):
    model, data = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DeepslimError, match="empty"):
        export_int8(model, torch.zeros(0, 1, 28, 28), tmp_path / "a.onnx")
    with pytest.raises(DeepslimError, match="does not accept inputs of shape"):
        export_int8(model, torch.zeros(8, 3, 28, 28), tmp_path / "b.onnx")
    with pytest.raises(DeepslimError, match="no layer 'fc2'"):
        export_int8(model, data.train, tmp_path / "c.onnx", PTQConfig(keep_float=["fc2"]))
    with pytest.raises(DeepslimError, match="PTQConfig.observer"):
        PTQConfig(observer="kl")
    assert not any((tmp_path / n).exists() for n in ("a.onnx", "b.onnx", "c.onnx"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # same device: before was cloned there


def test_fake_quant_pytorch_model_agrees_with_int8_onnx(trained, tmp_path):
    from deepslim.quantize import quantize_

    model, data = trained
    config = PTQConfig(calibration_size=128)
    fake = quantize_(model, config, data.train)
    export_int8(model, data.train, tmp_path / "m.onnx", config)
    logits = deepslim.onnx_session(tmp_path / "m.onnx").run(None, {"input": data.test.images.numpy()})[0]
    with torch.no_grad():
        fake_top1 = call_model(fake, data.test.images).argmax(1).cpu().numpy()
    assert np.mean(logits.argmax(1) == fake_top1) >= 0.99
    deepslim.save(fake, tmp_path / "fake")
    fake.cpu()  # load gives a CPU model: compare like with like
    with torch.no_grad():
        assert torch.equal(deepslim.load(tmp_path / "fake")(data.test.images), fake(data.test.images))


def test_quantize_cli_and_eval_runs_the_int8_model(trained, tmp_path, cli):
    import json

    model, data = trained
    deepslim.save(model, tmp_path / "m", metadata={"dataset": {"name": "synthetic"}})
    code, out, _ = cli("quantize", tmp_path / "m", "--calib", "64", "--out", tmp_path / "q", "--json")
    result = json.loads(out)
    assert code == 0 and (tmp_path / "q" / "model.int8.onnx").is_file()
    code, out, _ = cli("eval", tmp_path / "q", "--json")
    evaluated = json.loads(out)
    assert evaluated["runtime"] == "model.int8.onnx on onnxruntime"
    assert evaluated["accuracy"] == pytest.approx(result["int8_onnx_accuracy"])
    assert isinstance(deepslim.load(tmp_path / "q"), torch.nn.Module)
    code, _, err = cli("quantize", tmp_path / "m", "--out", tmp_path / "q")
    assert code == 2 and "--overwrite" in err


def test_dynamic_int8_for_linear_heavy_models(tmp_path):
    torch.manual_seed(0)
    model = deepslim.create_model("vit-tiny").eval()
    x = torch.randn(16, 1, 28, 28)
    from deepslim.quantize import export_int8_dynamic

    export_int8_dynamic(model, x, tmp_path / "vit.onnx")
    ops = executed_integer_ops(tmp_path / "vit.onnx")
    assert any(op in ops for op in ("DynamicQuantizeMatMul", "MatInteger", "MatMulIntegerToFloat", "MatMulInteger")), ops
    out = deepslim.onnx_session(tmp_path / "vit.onnx").run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max()


class ConvLSTM(torch.nn.Module):
    """A conv front end feeding an LSTM over image rows: ONNX Runtime has no static int8 LSTM."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.lstm = torch.nn.LSTM(4 * 28, 32, batch_first=True)
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x))                      # (B, 4, 28, 28)
        x = x.permute(0, 2, 1, 3).reshape(x.shape[0], 28, 4 * 28)
        return self.fc(self.lstm(x)[0][:, -1])


def test_ops_onnx_runtime_cannot_quantize_are_kept_float_and_listed(tmp_path):
    torch.manual_seed(0)
    model = ConvLSTM().eval()
    images = torch.randn(32, 1, 28, 28)
    info = export_int8(model, images, tmp_path / "m.onnx", PTQConfig(calibration_size=32))
    assert any("/conv/" in n for n in info["quantized_nodes"])
    assert any("lstm" in n.lower() for n in info["left_float"]), info["left_float"]
    logits = deepslim.onnx_session(tmp_path / "m.onnx").run(None, {"input": images.numpy()})[0]
    with torch.no_grad():
        assert np.abs(logits - model(images).numpy()).max() < 0.1
