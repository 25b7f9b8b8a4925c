"""``KD``: the distillation settings (logit loss, feature hints)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import Config, DeepslimError

HINT_LOSSES = ("mse", "attention")


@dataclass
class KD(Config):
    """Knowledge distillation (Hinton et al. 2015), optionally with feature hints.

    Loss = ``alpha`` * T^2 * KL(teacher_T || student_T) + (1 - ``alpha``) * CE(student, labels)
    + ``hint_weight`` * sum of hint losses. ``hints`` maps student layer names to teacher
    layer names (FitNets, Romero et al. 2015: MSE through a learned 1x1-conv / linear adapter
    where shapes differ); ``hint_loss="attention"`` compares spatial attention maps instead
    (Zagoruyko & Komodakis 2017; no adapter needed, ``hint_weight`` ~ 1000 per their paper).
    ``cache_teacher`` stores teacher logits per training sample; only valid without augmentation
    (and with ``TensorData``, whose samples have indices).

    For a task other than classification (``deepslim.EmbeddingMatch``, ``loss_fn=``) the teacher's
    term is that task's loss to the teacher's outputs, weighted ``alpha`` (``temperature`` is then
    unused); the label term, weighted ``1 - alpha``, is dropped for batches without a target.

    Example:
        >>> KD(alpha=1.0).temperature  # alpha=1: learn from the teacher alone, batches need no target
        4.0
    """

    temperature: float = 4.0
    alpha: float = 0.9
    hints: dict = field(default_factory=dict)
    hint_weight: float = 1.0
    hint_loss: str = "mse"
    cache_teacher: bool = False

    def __post_init__(self):
        self.check_range("temperature", 0.0, None, low_inclusive=False)
        self.check_range("alpha", 0.0, 1.0)
        self.check_range("hint_weight", 0.0, None)
        self.check_choice("hint_loss", HINT_LOSSES)
        if not isinstance(self.hints, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                       for k, v in self.hints.items()):
            raise DeepslimError("KD.hints must map student layer names to teacher layer names",
                                hint='e.g. {"stages.2": "stages.2"}')
