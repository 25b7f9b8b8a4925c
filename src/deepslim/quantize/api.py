"""``deepslim.quantize_(model, config, calibration)``: fake-quantize a model in PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core import DeepslimError, set_submodule
from ..prune.select import PRUNABLE, check_names_exist
from .bias_correction import correct_biases_, input_means
from .config import PTQConfig
from .int8 import _images, prepare_float_model
from .modules import QuantLayer
from .observers import observe


def _input_samples(model: nn.Module, names: list[str], images: torch.Tensor, limit: int = 200_000) -> dict[str, np.ndarray]:
    modules = dict(model.named_modules())
    samples: dict[str, list[np.ndarray]] = {n: [] for n in names}
    rng = np.random.default_rng(0)

    def hook(name):
        def record(module, inputs):
            flat = inputs[0].detach().cpu().numpy().ravel()
            if flat.size > limit // 4:
                flat = rng.choice(flat, limit // 4, replace=False)
            samples[name].append(flat)
        return record

    handles = [modules[n].register_forward_pre_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            for start in range(0, len(images), 64):
                model(images[start:start + 64])
    finally:
        for h in handles:
            h.remove()
    return {n: np.concatenate(v) for n, v in samples.items() if v}


def quantize_(model: nn.Module, config: PTQConfig, calibration, *, weight_bits: int = 8) -> nn.Module:
    """Return a fake-quantized copy of ``model``: BN folded, every conv/linear (but ``keep_float``)
    wrapped in ``QuantLayer`` with calibrated input ranges. The input model is not modified.

    Named with a trailing underscore like the other verbs; since BN folding replaces modules,
    it works on a copy and returns it.

    Example:
        >>> import deepslim
        >>> data = deepslim.load_dataset("synthetic", subset=200)
        >>> q = quantize_(deepslim.create_model("lenet5"), PTQConfig(), data.train)
        >>> type(q[0]).__name__
        'QuantLayer'
    """
    if not isinstance(config, PTQConfig):
        raise DeepslimError(f"quantize_ expects a PTQConfig, got {type(config).__name__}")
    images = _images(calibration)[: config.calibration_size]
    if config.keep_float:
        check_names_exist(model, config.keep_float)
    work = prepare_float_model(model, config, images)
    names = [n for n, m in work.named_modules() if isinstance(m, PRUNABLE) and n not in set(config.keep_float)]
    samples = _input_samples(work, names, images)
    means = input_means(work, names, images) if config.bias_correction else {}
    modules = dict(work.named_modules())
    for name in names:
        low, high = observe(samples[name], config.observer, config.percentile)
        set_submodule(work, name, QuantLayer.wrap(modules[name], weight_bits=weight_bits, act_range=(low, high)))
    if config.bias_correction:
        correct_biases_(work, means)
    return work.eval()
