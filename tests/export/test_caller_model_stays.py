"""ONNX export and int8 export work from a CPU copy: the caller's model keeps its device and its very parameters.

On CPU this checks no copy replaced or moved anything; under `pytest --device cuda` it checks the model stays on
the GPU while ONNX Runtime works on the CPU.
"""

import torch

import deepslim
from deepslim.quantize import export_int8, export_int8_dynamic


def _snapshot(model):
    return [(p, p.device, p.data_ptr()) for p in model.parameters()]


def test_export_onnx_leaves_the_callers_model_where_it_is(tmp_path, device):
    model = deepslim.create_model("resnet8").eval().to(device)
    before = _snapshot(model)
    assert deepslim.export_onnx(model, tmp_path / "m.onnx", torch.randn(1, 1, 28, 28))["max_abs_diff"] < 1e-4
    assert _snapshot(model) == before


def test_export_int8_leaves_the_callers_model_where_it_is(tmp_path, device):
    model = deepslim.create_model("lenet5").eval().to(device)
    before, weights = _snapshot(model), [p.detach().clone() for p in model.parameters()]
    export_int8(model, torch.randn(64, 1, 28, 28), tmp_path / "q.onnx")  # calibration images on the CPU
    assert _snapshot(model) == before
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))  # batch norm folded into a copy
    export_int8_dynamic(model, torch.randn(2, 1, 28, 28), tmp_path / "d.onnx")
    assert _snapshot(model) == before
