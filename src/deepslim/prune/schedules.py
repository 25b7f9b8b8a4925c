"""When to prune: gradual (AGP) during training, or iterative prune -> fine-tune rounds."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn

from ..core import Config
from ..train.callbacks import Callback
from .config import MagnitudePruning
from .masks import MaskSet


@dataclass
class AGPSchedule(Config):
    """Automated gradual pruning (Zhu & Gupta, 2017): sparsity rises as a cubic from
    ``initial_sparsity`` to ``final_sparsity`` between ``start_fraction`` and ``end_fraction`` of
    training, in steps every ``frequency`` optimizer steps."""

    final_sparsity: float = 0.8
    initial_sparsity: float = 0.0
    start_fraction: float = 0.0
    end_fraction: float = 0.75
    frequency: int = 50
    scope: str = "layer"

    def __post_init__(self):
        self.check_range("final_sparsity", 0.0, 1.0, high_inclusive=False)
        self.check_range("initial_sparsity", 0.0, self.final_sparsity)
        self.check_range("start_fraction", 0.0, 1.0)
        self.check_range("end_fraction", self.start_fraction, 1.0)
        self.check_range("frequency", 1, None, integer=True)
        self.check_choice("scope", ("layer", "global"))

    def sparsity_at(self, step: int, total_steps: int) -> float:
        """s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, held at s_f after the end.

        Example:
            >>> AGPSchedule(final_sparsity=0.8).sparsity_at(0, 100)
            0.0
            >>> AGPSchedule(final_sparsity=0.8).sparsity_at(75, 100)
            0.8
        """
        start, end = int(self.start_fraction * total_steps), int(self.end_fraction * total_steps)
        if step < start:
            return 0.0
        if step >= end or end == start:
            return self.final_sparsity
        progress = (step - start) / (end - start)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1 - progress) ** 3


class GradualPruning(Callback):
    """Applies an ``AGPSchedule`` of magnitude pruning from inside the training loop.

    Example:
        >>> from deepslim import Trainer, TrainConfig, create_model
        >>> pruning = GradualPruning(AGPSchedule(final_sparsity=0.9))
        >>> trainer = Trainer(create_model("lenet5"), TrainConfig(epochs=3), callbacks=[pruning])  # doctest: +SKIP
    """

    def __init__(self, schedule: AGPSchedule, *, filter_fn=None, layers: dict | None = None):
        self.schedule = schedule
        self.filter_fn, self.layers = filter_fn, layers
        self.masks: MaskSet | None = None
        self.history: list[tuple[int, float]] = []

    def _prune_to(self, trainer, sparsity: float) -> None:
        from .api import prune_

        cfg = MagnitudePruning(sparsity=sparsity, scope=self.schedule.scope)
        plan = prune_(trainer.model, cfg, filter_fn=self.filter_fn, layers=self.layers, masks=self.masks)
        self.masks = plan.masks
        self.history.append((trainer.global_step, self.masks.sparsity()))

    def on_step_begin(self, trainer, step: int) -> None:
        if step % self.schedule.frequency and step != trainer.total_steps - 1:
            return
        target = self.schedule.sparsity_at(step, trainer.total_steps)
        current = self.masks.sparsity() if self.masks is not None else 0.0
        if target > current + 1e-9:
            self._prune_to(trainer, target)

    def after_backward(self, trainer) -> None:
        if self.masks is not None:
            self.masks.mask_gradients(trainer.model)

    def after_step(self, trainer) -> None:
        if self.masks is not None:
            self.masks.apply(trainer.model)

    def on_train_end(self, trainer) -> None:
        final = self.schedule.final_sparsity
        if self.masks is None or self.masks.sparsity() < final - 1e-9:
            self._prune_to(trainer, final)  # reach the target even if training stopped early


def iterative_prune(model: nn.Module, configs: list[Config], train_data, finetune, *, example_inputs=None,
                    val_data=None, teacher: nn.Module | None = None, kd=None) -> list[dict]:
    """Prune -> fine-tune, once per config in ``configs`` (e.g. rising sparsities or ratios).

    ``finetune`` is a ``TrainConfig`` used after each round. Unstructured masks carry over
    between rounds (they only shrink) and are kept during fine-tuning. With ``teacher``
    (e.g. a copy of the unpruned model) each fine-tune distils from it (``kd``: a ``KD``).
    Returns one record per round (plan summary and validation accuracy).
    """
    from ..train import Trainer, evaluate
    from .api import prune_
    from .masks import KeepMasked

    rounds, masks = [], None
    for i, cfg in enumerate(configs):
        plan = prune_(model, cfg, example_inputs=example_inputs, masks=masks)
        if not plan.structured:
            masks = plan.masks
        callbacks = [] if plan.structured else [KeepMasked(plan.masks)]
        if teacher is not None:
            from ..distill import KD, Distillation

            callbacks.append(Distillation(model, teacher, kd or KD(), train_data.images[:2]))
        Trainer(model, copy.deepcopy(finetune), callbacks=callbacks).fit(train_data)
        record = {"round": i + 1, **plan.to_dict()}
        if val_data is not None:
            record["val_accuracy"] = evaluate(model, val_data)["accuracy"]
        rounds.append(record)
    return rounds
