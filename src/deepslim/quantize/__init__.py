"""Quantization: fake-quant PyTorch models and int8 ONNX models that run on integer kernels."""

from .adaround import AdaRoundConfig, adaround_weights_
from .api import adaround_model, quantize_
from .config import PTQConfig
from .folding import fold_batchnorm
from .int8 import executed_integer_ops, export_int8, export_int8_dynamic
from .lowbit import LowBitConfig, LowBitLayer, freeze_lowbit_, lowbit_
from .modules import QuantLayer
from .qat import prepare_qat, strip_qat

__all__ = ["AdaRoundConfig", "adaround_model", "adaround_weights_", "LowBitConfig", "LowBitLayer", "PTQConfig", "freeze_lowbit_", "lowbit_", "QuantLayer", "executed_integer_ops", "export_int8", "export_int8_dynamic", "fold_batchnorm", "prepare_qat", "quantize_", "strip_qat"]
