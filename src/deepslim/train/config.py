"""Training hyper-parameters."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import Config

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle", "constant")


@dataclass
class TrainConfig(Config):
    """How to train: optimiser, schedule, regularisation, augmentation.

    Example:
        >>> TrainConfig(epochs=5, optimizer="adamw", lr=1e-3, schedule="onecycle")
        TrainConfig(epochs=5, ...)
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = True
    crop_padding: int = 2
    flip: bool = True
    grad_clip: float | None = None
    seed: int = 0
    eval_batch_size: int = 1000

    def __post_init__(self):
        self.check_range("epochs", 0, None, integer=True)
        self.check_range("batch_size", 1, None, integer=True)
        self.check_choice("optimizer", OPTIMIZERS)
        self.check_range("lr", 0.0, None, low_inclusive=False)
        self.check_range("momentum", 0.0, 1.0, high_inclusive=False)
        self.check_range("weight_decay", 0.0, None)
        self.check_choice("schedule", SCHEDULES)
        self.check_range("warmup_epochs", 0.0, None)
        self.check_range("label_smoothing", 0.0, 1.0, high_inclusive=False)
        self.check_range("crop_padding", 0, None, integer=True)
        self.check_range("seed", 0, None, integer=True)
        self.check_range("eval_batch_size", 1, None, integer=True)
        if self.grad_clip is not None:
            self.check_range("grad_clip", 0.0, None, low_inclusive=False)
