"""``deepslim.distill``: train a student against a teacher with the ordinary training loop."""

from __future__ import annotations

from torch import nn

from ..core import DeepslimError, resolve_device
from ..core.inputs import move_inputs, slice_batch, split_batch
from ..train import TrainConfig, Trainer
from ..train.batches import check_source, first_batches, is_tensor_data
from ..train.task import EmbeddingMatch, Task, resolve_task
from .callback import Distillation
from .config import KD


def distill(student: nn.Module, teacher: nn.Module, train_data, config: TrainConfig | None = None,
            kd: KD | None = None, *, val_data=None, device="auto", callbacks=(), task: Task | None = None,
            loss_fn=None, metric=None) -> list[dict]:
    """Train ``student`` on ``train_data`` with knowledge distillation from ``teacher``.

    The teacher is frozen and kept in eval mode; its outputs are computed once per batch
    under ``torch.inference_mode``. Returns the training history (one dict per epoch).

    ``train_data`` is ``TensorData`` or any re-iterable source of batches (``inputs`` or
    ``(inputs, target)``; see ``Trainer``). ``task`` (default ``Classification()``: KD on logits)
    or ``loss_fn=``/``metric=`` say what is learnt: with ``EmbeddingMatch("cosine" | "mse")`` the
    student is pulled toward the teacher's embeddings by that distance and batches need no target
    (the label term, weighted ``1 - KD.alpha``, needs one and is dropped without); validation then
    reports the match to the teacher (``val_cosine``), or to the targets when the batches carry them.

    Example:
        >>> import deepslim
        >>> data = deepslim.load_dataset("synthetic", subset=256)
        >>> teacher, student = deepslim.create_model("resnet8"), deepslim.create_model("lenet5")
        >>> history = distill(student, teacher, data.train, deepslim.TrainConfig(epochs=1), KD(temperature=4.0))
    """
    task = resolve_task(task, loss_fn, metric)
    device = resolve_device(device)
    labelled = True
    if is_tensor_data(train_data):
        if len(train_data) == 0:
            raise DeepslimError("the training split is empty")
        example = train_data.images[:2].to(device)
    else:
        check_source(train_data, "training data", reiterable=True)
        first = first_batches(train_data, 1)
        if not first:
            raise DeepslimError("the training data holds no batch")
        inputs, target = split_batch(first[0])
        example, labelled = move_inputs(slice_batch(inputs, 2), device), target is not None
    student.to(device)
    teacher.to(device)
    callback = Distillation(student, teacher, kd or KD(), example, task=task)
    trainer = Trainer(student, config or TrainConfig(), callbacks=[callback, *callbacks], device=device, task=task)
    if isinstance(task, EmbeddingMatch) and task.teacher is None and not labelled:
        trainer.val_task = task.against(teacher)  # no target embeddings: judged by the match to the teacher
    return trainer.fit(train_data, val_data=val_data)
