"""``deepslim.quantize_(model, config, calibration)``: fake-quantize a model in PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core import DeepslimError, log, set_submodule
from ..core.inputs import call_model
from ..prune.select import PRUNABLE, check_names_exist
from .adaround import AdaRoundConfig, adaround_weights_
from .bias_correction import correct_biases_, input_means
from .config import PTQConfig
from .data import calibration_batches, check_takes
from .int8 import prepare_float_model
from .modules import QuantLayer
from .observers import observe

# PyTorch modules that read a child Linear's ``weight`` instead of calling it: attention applies its
# output projection through ``F.multi_head_attention_forward``, and the encoder layer's fused
# inference path reads ``linear1.weight`` / ``linear2.weight``. A QuantLayer there would break them
# (it has no ``weight``), so those children stay float in the PyTorch twin; ``export_int8`` still
# quantizes them, since ONNX Runtime sees plain MatMul/Gemm nodes.
_READS_CHILD_WEIGHTS = (nn.MultiheadAttention, nn.TransformerEncoderLayer)


def _input_samples(model: nn.Module, names: list[str], batches: list, limit: int = 200_000) -> dict[str, np.ndarray]:
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
            for inputs in batches:
                call_model(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return {n: np.concatenate(v) for n, v in samples.items() if v}


def _called_directly(model: nn.Module) -> set[str]:
    """Names of layers whose parent reads their weights rather than calling them."""
    return {f"{parent}.{child}".lstrip(".") for parent, module in model.named_modules()
            if isinstance(module, _READS_CHILD_WEIGHTS) for child, _ in module.named_children()}


def quantize_(model: nn.Module, config: PTQConfig, calibration, *, weight_bits: int = 8,
              report: dict | None = None) -> nn.Module:
    """Return a fake-quantized copy of ``model``: BN folded, every conv/linear (but ``keep_float``)
    wrapped in ``QuantLayer`` with calibrated input ranges. The input model is not modified.

    ``calibration`` is images (a tensor or a ``TensorData``) or any iterable of batches, each
    ``inputs`` or ``(inputs, target)`` with inputs a tensor, a tuple or a dict (see
    ``deepslim.core.inputs``); its first ``config.calibration_size`` samples are used. Layers the
    calibration never runs (e.g. projections that ``nn.MultiheadAttention`` applies through their
    weights) stay float.

    With ``config.rounding="adaround"`` the weights are rounded by AdaRound at ``weight_bits``
    before wrapping; pass a dict as ``report`` to receive what it did (per-layer output errors,
    and the layers it left at round-to-nearest, with why).

    Named with a trailing underscore like the other verbs; since BN folding replaces modules,
    it works on a copy and returns it.

    Example:
        >>> import deepslim
        >>> data = deepslim.load_dataset("synthetic", subset=200)
        >>> q = quantize_(deepslim.create_model("lenet5"), PTQConfig(), data.train)
        >>> type(q[0]).__name__
        'QuantLayer'
        >>> batches = [({"input_ids": ids, "attention_mask": mask}, None), ...]  # doctest: +SKIP
        >>> q = quantize_(text_model, PTQConfig(), batches)                      # doctest: +SKIP
    """
    if not isinstance(config, PTQConfig):
        raise DeepslimError(f"quantize_ expects a PTQConfig, got {type(config).__name__}")
    calib = calibration_batches(calibration, config.calibration_size)
    if config.keep_float:
        check_names_exist(model, config.keep_float)
    work = prepare_float_model(model, config)
    # on the eval-mode copy: a check must not touch the caller's BN statistics
    check_takes(work, calib.example, tensor_outputs=False)
    names = _quantized_layers(work, config)
    samples = _input_samples(work, names, calib.batches)
    means = input_means(work, names, calib.batches) if config.bias_correction else {}
    modules = dict(work.named_modules())
    unseen = [n for n in names if n not in samples]
    if unseen:
        log(f"quantize_: {len(unseen)} layers never ran on the calibration data and stay float: {', '.join(unseen)}")
    ranges = {n: observe(samples[n], config.observer, config.percentile) for n in names if n in samples}
    if config.rounding == "adaround":
        done = adaround_prepared(work, config, calib.batches, bits=weight_bits, per_channel=True, ranges=ranges)
        if report is not None:
            report.update(done)
    for name, act_range in ranges.items():
        set_submodule(work, name, QuantLayer.wrap(modules[name], weight_bits=weight_bits, act_range=act_range))
    if config.bias_correction:
        correct_biases_(work, means)
    return work.eval()


def _quantized_layers(work: nn.Module, config: PTQConfig) -> list[str]:
    """The conv/linear layers PTQ quantizes: all but ``keep_float`` and those whose parent reads their weights."""
    skip = set(config.keep_float) | _called_directly(work)
    return [n for n, m in work.named_modules() if isinstance(m, PRUNABLE) and n not in skip]


def adaround_prepared(work: nn.Module, config: PTQConfig, batches: list, *, bits: int, per_channel: bool,
                      ranges: dict | None = None) -> dict:
    """AdaRound, in place, on a model already prepared for quantization (``prepare_float_model``):
    every quantized layer that ran on ``batches``. ``ranges`` (layer -> the observer's input range,
    computed here when not given) quantize the rounded layers' inputs, as the int8 model will."""
    if ranges is None:
        names = _quantized_layers(work, config)
        samples = _input_samples(work, names, batches)
        ranges = {n: observe(samples[n], config.observer, config.percentile) for n in names if n in samples}
    return adaround_weights_(work, batches, AdaRoundConfig(iterations=config.adaround_iterations), names=list(ranges),
                             bits=bits, per_channel=per_channel, act_ranges=ranges)


def adaround_model(model: nn.Module, config: PTQConfig, calibration, *, bits: int = 8) -> tuple[nn.Module, dict, PTQConfig]:
    """Round once, quantize twice: the float copy of ``model`` that both int8 paths start from (BN
    folded, equalized if asked) with AdaRound weights on the ``bits``-bit grid, what AdaRound did,
    and the config that quantizes that copy without preparing or rounding it again. Passing the
    copy and that config to ``export_int8`` and ``quantize_`` gives the ONNX model and its PyTorch
    twin from one optimisation. The input model is not modified.

    Example:
        >>> rounded, report, cfg = adaround_model(model, PTQConfig(rounding="adaround"), images)  # doctest: +SKIP
        >>> export_int8(rounded, images, "model.int8.onnx", cfg)                              # doctest: +SKIP
        >>> twin = quantize_(rounded, cfg, images)                                            # doctest: +SKIP
    """
    calib = calibration_batches(calibration, config.calibration_size)
    if config.keep_float:
        check_names_exist(model, config.keep_float)
    work = prepare_float_model(model, config)
    check_takes(work, calib.example, tensor_outputs=False)
    per_channel = config.per_channel if bits == 8 else True  # below 8 bits only the per-channel twin exists
    report = adaround_prepared(work, config, calib.batches, bits=bits, per_channel=per_channel)
    rest = PTQConfig.from_dict({**config.to_dict(), "rounding": "nearest", "fold_bn": False, "equalize": False})
    return work, report, rest
