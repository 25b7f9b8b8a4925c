"""Training loop with callbacks, schedules, evaluation and checkpoints."""

from .batchnorm import recalibrate_batchnorm_
from .callbacks import Callback
from .config import TrainConfig
from .evaluate import check_input_shape, evaluate
from .loop import Trainer, train
from .schedules import lr_at

__all__ = ["Callback", "TrainConfig", "Trainer", "check_input_shape", "evaluate", "lr_at", "recalibrate_batchnorm_",
           "train"]
