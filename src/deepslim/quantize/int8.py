"""Post-training static int8: a QDQ ONNX model that ONNX Runtime runs with integer kernels.

deepslim prepares the float model (BN folding; optionally cross-layer equalization and
bias correction), exports it, computes every activation's range with its own observers,
and hands those ranges to ONNX Runtime's quantizer through its calibration-cache file, so
ONNX Runtime writes the QuantizeLinear/DequantizeLinear graph that its CPU kernels fuse
into QLinearConv / QLinearMatMul.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ..core import DeepslimError, log
from ..export.files import write_atomic
from ..export.onnx import export_onnx
from ..prune.select import check_names_exist
from ..train.evaluate import check_input_shape
from .calibrate import collect_activations
from .config import PTQConfig
from .folding import fold_batchnorm
from .observers import observe
from .onnx_names import module_of_node

QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")
INTEGER_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "QLinearAdd",
               "DynamicQuantizeMatMul", "MatMulIntegerToFloat")


def _images(calibration) -> torch.Tensor:
    images = getattr(calibration, "images", calibration)
    if not isinstance(images, torch.Tensor):
        raise DeepslimError(f"calibration data must be a tensor of images or a TensorData, got {type(calibration).__name__}")
    if images.ndim < 2 or len(images) == 0:
        raise DeepslimError(f"the calibration set is empty or malformed (shape {tuple(images.shape)})",
                            hint="pass a batch of training images, e.g. data.train.images[:512]")
    return images.detach().cpu().float()


def prepare_float_model(model: nn.Module, config: PTQConfig, images: torch.Tensor) -> nn.Module:
    """The float model that gets quantized: a copy, BN folded, optionally equalized and bias-corrected."""
    work = fold_batchnorm(model)[0] if config.fold_bn else copy.deepcopy(model).eval()
    if config.equalize:
        from .equalize import equalize_

        equalize_(work)
    return work


def _precorrect_biases(work: nn.Module, images: torch.Tensor) -> None:
    """For the ONNX path: ONNX Runtime rounds weights per channel like we do, so correct the float biases first."""
    from ..prune.select import PRUNABLE
    from .bias_correction import correct_float_biases_, input_means

    names = [n for n, m in work.named_modules() if isinstance(m, PRUNABLE)]
    correct_float_biases_(work, input_means(work, names, images), bits=8)


def export_int8(model: nn.Module, calibration, path: str | Path, config: PTQConfig | None = None) -> dict:
    """Write a static int8 ONNX model of ``model`` to ``path``, calibrated on ``calibration`` images.

    Returns what was done: the observer, the nodes quantized and those kept in float.
    The input model is never modified.

    Example:
        >>> import deepslim, torch
        >>> data = deepslim.load_dataset("synthetic", subset=200)
        >>> info = export_int8(deepslim.create_model("resnet8"), data.train, "/tmp/r8-int8.onnx")  # doctest: +SKIP
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    config = config or PTQConfig()
    images = _images(calibration)[: config.calibration_size]
    model = model.eval()
    check_input_shape(model, images[:2].to(next((p.device for p in model.parameters()), torch.device("cpu"))))
    if config.keep_float:
        check_names_exist(model, config.keep_float)
    work = prepare_float_model(model.cpu() if _on_cpu(model) else copy.deepcopy(model).cpu(), config, images)
    if config.bias_correction:
        _precorrect_biases(work, images)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="deepslim-int8-") as tmp:
        tmp = Path(tmp)
        export_onnx(work, tmp / "fp32.onnx", images[:1])
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
        quant_pre_process(str(tmp / "fp32.onnx"), str(tmp / "pre.onnx"), skip_symbolic_shape=True)
        activations = collect_activations(tmp / "pre.onnx", images)
        ranges = {name: observe(values, config.observer, config.percentile) for name, values in activations.items()}
        data = {n: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for n, (lo, hi) in ranges.items()}
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), tmp / "ranges.json")
        graph = onnx.load(str(tmp / "pre.onnx")).graph
        keep = set(config.keep_float)
        excluded = [n.name for n in graph.node if n.op_type in QUANTIZABLE_OPS and module_of_node(n.name) in keep]
        quantize_static(str(tmp / "pre.onnx"), str(tmp / "int8.onnx"), calibration_data_reader=None,
                        quant_format=QuantFormat.QDQ, per_channel=config.per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                        calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(tmp / "ranges.json"),
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        payload = (tmp / "int8.onnx").read_bytes()
        left_float = float_compute_nodes(tmp / "int8.onnx")
    write_atomic(path, lambda p: p.write_bytes(payload))
    quantized = [n.name for n in graph.node if n.op_type in QUANTIZABLE_OPS and n.name not in left_float]
    not_quantizable = [n for n in left_float if n not in excluded]
    log(f"int8: {len(quantized)} layers quantized, {len(excluded)} kept in float on request, observer {config.observer}")
    if not_quantizable:
        log(f"int8: ONNX Runtime left these in float (no int8 kernel): {', '.join(not_quantizable)}")
    return {"path": str(path), "observer": config.observer, "quantized_nodes": quantized, "kept_float": excluded,
            "left_float": not_quantizable, "config": config.to_dict()}


# Float ops that do real arithmetic: if one survives ONNX Runtime's QDQ fusion, it runs in float.
COMPUTE_OPS = QUANTIZABLE_OPS + ("ConvTranspose", "LayerNormalization", "Softmax", "Attention",
                                 "MultiHeadAttention", "LSTM", "GRU", "RNN", "Einsum", "InstanceNormalization")


def _optimized_graph(path: str | Path) -> onnx.GraphProto:
    """The graph ONNX Runtime actually executes on CPU, after it fuses QDQ patterns into integer ops."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath).graph


def float_compute_nodes(path: str | Path) -> list[str]:
    """Compute nodes that still run in float after ONNX Runtime's fusion (no integer kernel for them)."""
    return [n.name or n.op_type for n in _optimized_graph(path).node if n.op_type in COMPUTE_OPS]


def _on_cpu(model: nn.Module) -> bool:
    return all(t.device.type == "cpu" for t in list(model.parameters()) + list(model.buffers()))


def executed_integer_ops(path: str | Path) -> dict[str, int]:
    """Op types ONNX Runtime actually runs after fusing the QDQ graph (counted), from its optimized model."""
    counts: dict[str, int] = {}
    for node in _optimized_graph(path).node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def export_int8_dynamic(model: nn.Module, example_inputs: torch.Tensor, path: str | Path) -> dict:
    """Dynamic int8 for Linear-heavy models: int8 weights, activations quantized on the fly per batch
    (ONNX Runtime's ``quantize_dynamic``; no calibration data needed). Conv layers stay float.

    Example:
        >>> export_int8_dynamic(deepslim.create_model("vit-tiny"), torch.randn(1, 1, 28, 28), "/tmp/vit-dyn.onnx")  # doctest: +SKIP
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = model.eval()
    check_input_shape(model, example_inputs[:1])
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="deepslim-dyn-") as tmp:
        tmp = Path(tmp)
        work = model if _on_cpu(model) else copy.deepcopy(model).cpu()
        export_onnx(work, tmp / "fp32.onnx", example_inputs[:1].cpu())
        quantize_dynamic(str(tmp / "fp32.onnx"), str(tmp / "int8.onnx"), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gemm"], per_channel=True)
        payload = (tmp / "int8.onnx").read_bytes()
    write_atomic(path, lambda p: p.write_bytes(payload))
    return {"path": str(path), "mode": "dynamic"}
