"""Quantization configs."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import Config
from .adaround import AdaRoundConfig
from .observers import OBSERVERS

ROUNDINGS = ("nearest", "adaround")


@dataclass
class PTQConfig(Config):
    """Post-training static int8: per-channel symmetric int8 weights, uint8 activations whose
    ranges come from calibration data through ``observer``.

    ``keep_float`` names layers (module names, as in ``deepslim profile``) left in float.
    ``auto_keep_float`` additionally keeps the N layers whose quantization hurts most.
    ``rounding="adaround"`` learns each weight's rounding direction on the calibration data
    (``quantize.adaround``), ``adaround_iterations`` per layer, instead of rounding to nearest.
    """

    observer: str = "percentile"
    percentile: float = 99.99
    per_channel: bool = True
    calibration_size: int = 512
    keep_float: list = field(default_factory=list)
    auto_keep_float: int = 0
    fold_bn: bool = True
    equalize: bool = False
    bias_correction: bool = False
    rounding: str = "nearest"
    adaround_iterations: int = 1000

    def __post_init__(self):
        self.check_choice("rounding", ROUNDINGS)
        AdaRoundConfig(iterations=self.adaround_iterations)  # validates (a clear error for <= 0)
        self.check_choice("observer", OBSERVERS)
        self.check_range("percentile", 50.0, 100.0)
        self.check_range("calibration_size", 1, None, integer=True)
        self.check_range("auto_keep_float", 0, None, integer=True)
