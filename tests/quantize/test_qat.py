import numpy as np
import torch

import deepslim
from deepslim.quantize import QuantLayer, executed_integer_ops, export_int8, prepare_qat, strip_qat
from deepslim.testing import tiny_data


def test_qat_learns_step_sizes_and_exports_to_int8(tmp_path, device):
    data = tiny_data(n_train=400)
    model = deepslim.create_model("resnet8")
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=3, batch_size=32, lr=0.05), device=device)
    qat = prepare_qat(model, data.train.images[:128], weight_bits=4)  # calibration images on the CPU
    layers = [m for m in qat.modules() if isinstance(m, QuantLayer)]
    assert layers and all(m.learnable and m.weight_bits == 4 for m in layers)
    before = layers[1].weight_scale.detach().clone()
    deepslim.train(qat, data.train, deepslim.TrainConfig(epochs=1, batch_size=32, lr=0.01), device=device)
    assert not torch.equal(before, layers[1].weight_scale.detach())  # LSQ moved the step sizes
    accuracy = deepslim.evaluate(qat, data.test, device=device)["accuracy"]
    assert accuracy > 50
    float_model = strip_qat(qat)
    assert not any(isinstance(m, QuantLayer) for m in float_model.modules())
    export_int8(float_model, data.train.images[:128], tmp_path / "qat.onnx")  # from a CPU copy
    assert all(p.device.type == device.type for p in float_model.parameters())  # the caller's model stays
    assert executed_integer_ops(tmp_path / "qat.onnx").get("QLinearConv", 0) == 9
    logits = deepslim.onnx_session(tmp_path / "qat.onnx").run(None, {"input": data.test.images.numpy()})[0]
    assert np.mean(logits.argmax(1) == data.test.labels.numpy()) * 100 > accuracy - 5


def test_qat_model_saves_and_loads(tmp_path):
    data = tiny_data(n_train=100)
    qat = prepare_qat(deepslim.create_model("lenet5"), data.train.images[:64])
    deepslim.save(qat, tmp_path / "q")
    loaded = deepslim.load(tmp_path / "q")
    with torch.no_grad():
        assert torch.equal(loaded(data.test.images), qat.eval()(data.test.images))
