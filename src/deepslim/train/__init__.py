"""Training loop with callbacks, schedules, evaluation, checkpoints, and tasks (batch -> loss and metric)."""

from .batchnorm import recalibrate_batchnorm_
from .callbacks import Callback
from .config import TrainConfig
from .evaluate import check_input_shape, evaluate
from .loop import Trainer, train
from .schedules import lr_at
from .task import Classification, EmbeddingMatch, Task

__all__ = ["Callback", "Classification", "EmbeddingMatch", "Task", "TrainConfig", "Trainer", "check_input_shape",
           "evaluate", "lr_at", "recalibrate_batchnorm_", "train"]
