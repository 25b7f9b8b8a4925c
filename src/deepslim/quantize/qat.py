"""Quantization-aware training with learned step sizes (LSQ, Esser et al., 2020).

``prepare_qat`` folds BN and wraps every conv/linear in a ``QuantLayer`` whose weight and
activation step sizes are trainable, initialised from calibration data; train it with the
ordinary ``Trainer``. ``strip_qat`` turns the result back into a plain float model whose
weights sit inside the learned ranges, ready for ``export_int8``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..core import set_submodule
from .api import quantize_
from .config import PTQConfig
from .modules import QuantLayer
from .primitives import qrange


def prepare_qat(model: nn.Module, calibration, *, weight_bits: int = 8, config: PTQConfig | None = None) -> nn.Module:
    """A trainable fake-quant copy of ``model`` (LSQ step sizes), initialised by calibration.

    Example:
        >>> import deepslim
        >>> data = deepslim.load_dataset("synthetic", subset=200)
        >>> qat = prepare_qat(deepslim.create_model("lenet5"), data.train)
        >>> deepslim.train(qat, data.train, deepslim.TrainConfig(epochs=1, lr=0.01))   # doctest: +SKIP
    """
    fake = quantize_(model, config or PTQConfig(observer="mse"), calibration, weight_bits=weight_bits)
    for name, module in list(fake.named_modules()):
        if isinstance(module, QuantLayer) and not module.learnable:
            learnable = QuantLayer(module.kind, module.weight_scale.numel(), module.weight_bits, module.act_bits,
                                   learnable=True, quantize_input=module.quantize_input)
            learnable.to(module.weight_scale.device)  # with its layer's weights, as QuantLayer.wrap does
            learnable.layer = module.layer
            with torch.no_grad():
                learnable.weight_scale.copy_(module.weight_scale)
                learnable.act_scale.copy_(module.act_scale)
                learnable.act_zero_point.copy_(module.act_zero_point)
            set_submodule(fake, name, learnable)
    return fake.train()


@torch.no_grad()
def strip_qat(model: nn.Module) -> nn.Module:
    """A float copy of a QAT model: wrappers removed, each weight clipped to its learned range
    (so per-channel max-abs quantization, as ONNX Runtime does it, recovers the learned step)."""
    model = copy.deepcopy(model).eval()
    for name, module in list(model.named_modules()):
        if isinstance(module, QuantLayer):
            layer = module.layer
            _, qmax = qrange(module.weight_bits, signed=True, narrow=True)
            limit = (module.weight_scale.abs() * qmax).reshape([-1] + [1] * (layer.weight.ndim - 1))
            layer.weight.copy_(torch.maximum(torch.minimum(layer.weight, limit), -limit))
            set_submodule(model, name, layer)
    return model


def qat_export_config(config: PTQConfig) -> PTQConfig:
    """The export config after QAT: BN is already folded and the ranges learned, so export
    without re-folding, equalizing or correcting biases again."""
    data = config.to_dict()
    data.pop("type")
    data.update(fold_bn=False, equalize=False, bias_correction=False)
    return PTQConfig(**data)
