"""Quantization: fake-quant PyTorch models and int8 ONNX models that run on integer kernels."""

from .api import quantize_
from .config import PTQConfig
from .folding import fold_batchnorm
from .int8 import executed_integer_ops, export_int8, export_int8_dynamic
from .lowbit import LowBitConfig, LowBitLayer, freeze_lowbit_, lowbit_
from .modules import QuantLayer
from .qat import prepare_qat, strip_qat

__all__ = ["LowBitConfig", "LowBitLayer", "PTQConfig", "freeze_lowbit_", "lowbit_", "QuantLayer", "executed_integer_ops", "export_int8", "export_int8_dynamic", "fold_batchnorm", "prepare_qat", "quantize_", "strip_qat"]
