"""Post-training static int8: a QDQ ONNX model that ONNX Runtime runs with integer kernels.

deepslim prepares the float model (BN folding; optionally cross-layer equalization and
bias correction), exports it, computes every activation's range with its own observers,
and hands those ranges to ONNX Runtime's quantizer through its calibration-cache file, so
ONNX Runtime writes the QuantizeLinear/DequantizeLinear graph that its CPU kernels fuse
into QLinearConv / QLinearMatMul.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ..core import log
from ..core.inputs import call_model, move_inputs, output_tensors, slice_batch
from ..export.files import write_atomic
from ..export.onnx import export_onnx
from ..prune.select import check_names_exist
from .calibrate import collect_activations
from .config import PTQConfig
from .data import calibration_batches, check_takes
from .folding import fold_batchnorm
from .observers import observe
from .onnx_names import module_of_node

QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")
# Attention masks stand for minus infinity with the most negative float (Hugging Face uses
# torch.finfo(float32).min). No 8-bit grid holds both that and the real values, and the range
# arithmetic overflows, so a tensor holding such values gets no range: ONNX Runtime leaves it float.
SENTINEL = 1e30
INTEGER_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "QLinearAdd",
               "DynamicQuantizeMatMul", "MatMulIntegerToFloat")


def prepare_float_model(model: nn.Module, config: PTQConfig) -> nn.Module:
    """The float model that gets quantized: a copy (eval mode), BN folded, optionally equalized."""
    work = fold_batchnorm(model)[0] if config.fold_bn else copy.deepcopy(model).eval()
    if config.equalize:
        from .equalize import equalize_

        equalize_(work)
    return work


def _precorrect_biases(work: nn.Module, batches: list) -> None:
    """For the ONNX path: ONNX Runtime rounds weights per channel like we do, so correct the float biases first."""
    from ..prune.select import PRUNABLE
    from .bias_correction import correct_float_biases_, input_means

    names = [n for n, m in work.named_modules() if isinstance(m, PRUNABLE)]
    correct_float_biases_(work, input_means(work, names, batches), bits=8)


def export_int8(model: nn.Module, calibration, path: str | Path, config: PTQConfig | None = None, *,
                dynamic_sequence: bool = False) -> dict:
    """Write a static int8 ONNX model of ``model`` to ``path``, calibrated on ``calibration``.

    ``calibration`` is images (a tensor or a ``TensorData``) or any iterable of batches, each
    ``inputs`` or ``(inputs, target)`` with inputs a tensor, a tuple (positional arguments) or a
    dict (keyword arguments); its first ``config.calibration_size`` samples calibrate. The ONNX
    inputs are named like ``export_onnx`` names them; the batch axis is dynamic, and so is axis 1
    of integer/mask inputs with ``dynamic_sequence=True``. Weights are int8 per channel, activations
    uint8 (QDQ, which ONNX Runtime fuses into integer kernels).

    Returns what was done: the observer, the nodes quantized and those kept in float.
    The input model is never modified.

    Example:
        >>> import deepslim, torch
        >>> data = deepslim.load_dataset("synthetic", subset=200)
        >>> info = export_int8(deepslim.create_model("resnet8"), data.train, "/tmp/r8-int8.onnx")  # doctest: +SKIP
        >>> batches = [({"input_ids": ids, "attention_mask": mask}, None), ...]                  # doctest: +SKIP
        >>> info = export_int8(text_model, batches, "/tmp/text-int8.onnx", dynamic_sequence=True)  # doctest: +SKIP
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    config = config or PTQConfig()
    calib = calibration_batches(calibration, config.calibration_size)
    model = model.eval()
    check_takes(model, calib.example)
    if config.keep_float:
        check_names_exist(model, config.keep_float)
    work = prepare_float_model(model.cpu() if _on_cpu(model) else copy.deepcopy(model).cpu(), config)
    rounding = None
    if config.rounding == "adaround":
        from .api import adaround_prepared

        rounding = adaround_prepared(work, config, calib.batches, bits=8, per_channel=config.per_channel)
    if config.bias_correction:
        _precorrect_biases(work, calib.batches)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="deepslim-int8-") as tmp:
        tmp = Path(tmp)
        names = _export_fp32(work, tmp / "fp32.onnx", calib.example, dynamic_sequence)
        logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))
        quant_pre_process(str(tmp / "fp32.onnx"), str(tmp / "pre.onnx"), skip_symbolic_shape=True)
        activations = collect_activations(tmp / "pre.onnx", calib.batches, names)
        sentinels = [name for name, values in activations.items() if np.abs(values).max() >= SENTINEL]
        ranges = {name: observe(values, config.observer, config.percentile) for name, values in activations.items()
                  if name not in sentinels}
        data = {n: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for n, (lo, hi) in ranges.items()}
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), tmp / "ranges.json")
        graph = onnx.load(str(tmp / "pre.onnx")).graph
        keep = set(config.keep_float)
        excluded = [n.name for n in graph.node if n.op_type in QUANTIZABLE_OPS and module_of_node(n.name) in keep]
        masked = [n.name for n in graph.node if set(sentinels) & {*n.input, *n.output}]  # no range: must stay float
        quantize_static(str(tmp / "pre.onnx"), str(tmp / "int8.onnx"), calibration_data_reader=None,
                        quant_format=QuantFormat.QDQ, per_channel=config.per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=excluded + masked,
                        calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(tmp / "ranges.json"),
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        payload = (tmp / "int8.onnx").read_bytes()
        left_float = float_compute_nodes(tmp / "int8.onnx")
    write_atomic(path, lambda p: p.write_bytes(payload))
    quantized = [n.name for n in graph.node if n.op_type in QUANTIZABLE_OPS and n.name not in left_float]
    not_quantizable = [n for n in left_float if n not in excluded]
    log(f"int8: {len(quantized)} layers quantized, {len(excluded)} kept in float on request, observer {config.observer}")
    if sentinels:
        log(f"int8: {len(sentinels)} mask tensors (values beyond +-{SENTINEL:g}) stay float: {', '.join(sentinels)}")
    if not_quantizable:
        log(f"int8: ONNX Runtime left these in float (no int8 kernel): {', '.join(not_quantizable)}")
    info = {"path": str(path), "observer": config.observer, "quantized_nodes": quantized, "kept_float": excluded,
            "left_float": not_quantizable, "float_tensors": sentinels, "config": config.to_dict()}
    if rounding is not None:
        info["adaround"] = rounding
    return info



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


def _export_fp32(work: nn.Module, path: Path, example, dynamic_sequence: bool) -> list[str]:
    """Export the float model that gets quantized from one sample of ``example``; its ONNX input names.
    (An image tensor gives exactly the export it always had: ``images[:1]``, input ``input``.)"""
    one = move_inputs(slice_batch(example, 1), "cpu")
    return export_onnx(work, path, one, dynamic_sequence=dynamic_sequence)["input_names"]


def export_int8_dynamic(model: nn.Module, example_inputs, path: str | Path, *, dynamic_sequence: bool = False,
                        quantize_embeddings: bool = False) -> dict:
    """Dynamic int8 for Linear-heavy models (transformers): int8 weights, activations quantized on the
    fly per batch (ONNX Runtime's ``quantize_dynamic`` on MatMul/Gemm; no calibration data needed).
    Conv layers stay float; so do embedding tables unless ``quantize_embeddings``, which stores every
    ``Gather`` table in 8 bits too (ORT: uint8, one scale per table; dequantized after the lookup): for a
    small transformer such as minilm-l6 the word embeddings are half the file, so this takes it from
    1.5x to about 4x smaller. ``embeddings`` in the result says what the file holds.

    ``example_inputs`` is a tensor, a tuple or a dict (``deepslim.core.inputs``); ONNX inputs are
    named and made dynamic as in ``export_int8``. Returns ``max_abs_diff``, the largest difference
    between the int8 model and PyTorch on ``example_inputs``, next to the largest PyTorch output
    ``max_abs_output`` to read it against.

    Example:
        >>> export_int8_dynamic(deepslim.create_model("vit-tiny"), torch.randn(1, 1, 28, 28), "/tmp/vit-dyn.onnx")  # doctest: +SKIP
        >>> inputs = {"input_ids": ids, "attention_mask": mask}                      # doctest: +SKIP
        >>> export_int8_dynamic(text_model, inputs, "/tmp/text-dyn.onnx")["max_abs_diff"]  # doctest: +SKIP
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = model.eval()
    check_takes(model, example_inputs)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="deepslim-dyn-") as tmp:
        tmp = Path(tmp)
        work = model if _on_cpu(model) else copy.deepcopy(model).cpu()
        names = _export_fp32(work, tmp / "fp32.onnx", example_inputs, dynamic_sequence)
        ops = ["MatMul", "Gemm"] + (["Gather"] if quantize_embeddings else [])
        with _without_preprocess_advice():
            quantize_dynamic(str(tmp / "fp32.onnx"), str(tmp / "int8.onnx"), weight_type=QuantType.QInt8,
                             op_types_to_quantize=ops, per_channel=True)
        diff, top = _agreement(work, tmp / "int8.onnx", example_inputs, names)
        payload = (tmp / "int8.onnx").read_bytes()
        tables = _gather_tables(tmp / "int8.onnx")
    write_atomic(path, lambda p: p.write_bytes(payload))
    return {"path": str(path), "mode": "dynamic", "embeddings": tables, "max_abs_diff": diff, "max_abs_output": top}


class _PreprocessAdvice(logging.Filter):
    """ORT's quantizer logs 'Please consider to run pre-processing before quantization' (to the root
    logger) on every dynamic export: advice for static quantization of CNNs, noise for this user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")


@contextlib.contextmanager
def _without_preprocess_advice():
    root, advice = logging.getLogger(), _PreprocessAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _gather_tables(path: Path) -> str:
    """'8-bit', 'float' or 'none': what the Gather lookups of the ONNX file read (embedding tables)."""
    graph = onnx.load(str(path)).graph
    types = {t.name: t.data_type for t in graph.initializer}
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    tables = eight_bit + (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)  # not int64 index constants
    read = [types[n.input[0]] for n in graph.node if n.op_type == "Gather" and types.get(n.input[0]) in tables]
    if not read:
        return "none"
    return "8-bit" if all(t in eight_bit for t in read) else "float"


def _agreement(model: nn.Module, onnx_path: Path, inputs, names: list[str]) -> tuple[float, float]:
    """(largest |ONNX - PyTorch| over all outputs, largest |PyTorch output|) on ``inputs``."""
    from ..export.onnx import onnx_session
    from .calibrate import feeds

    inputs = move_inputs(inputs, "cpu")
    with torch.inference_mode():
        expected = [t.numpy() for t in output_tensors(call_model(model, inputs))]
    session = onnx_session(onnx_path)
    got = session.run(None, feeds(session, names, inputs))
    diff = max((float(np.max(np.abs(g - e))) for g, e in zip(got, expected) if e.size), default=0.0)
    top = max((float(np.max(np.abs(e))) for e in expected if e.size), default=0.0)
    return diff, top
