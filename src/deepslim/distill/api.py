"""``deepslim.distill``: train a student against a teacher with the ordinary training loop."""

from __future__ import annotations

from torch import nn

from ..core import DeepslimError, resolve_device
from ..train import TrainConfig, Trainer
from .callback import Distillation
from .config import KD


def distill(student: nn.Module, teacher: nn.Module, train_data, config: TrainConfig | None = None,
            kd: KD | None = None, *, val_data=None, device="auto", callbacks=()) -> list[dict]:
    """Train ``student`` on ``train_data`` with knowledge distillation from ``teacher``.

    The teacher is frozen and kept in eval mode; its outputs are computed once per batch
    under ``torch.inference_mode``. Returns the training history (one dict per epoch).

    Example:
        >>> import deepslim
        >>> data = deepslim.load_dataset("synthetic", subset=256)
        >>> teacher, student = deepslim.create_model("resnet8"), deepslim.create_model("lenet5")
        >>> history = distill(student, teacher, data.train, deepslim.TrainConfig(epochs=1), KD(temperature=4.0))
    """
    if len(train_data) == 0:
        raise DeepslimError("the training split is empty")
    device = resolve_device(device)
    student.to(device)
    teacher.to(device)
    callback = Distillation(student, teacher, kd or KD(), train_data.images[:2].to(device))
    trainer = Trainer(student, config or TrainConfig(), callbacks=[callback, *callbacks], device=device)
    return trainer.fit(train_data, val_data=val_data)
