"""Lottery tickets: iterative magnitude pruning with weight rewinding, and its two controls.

Frankle & Carbin (2019) find sparse subnetworks that train to full accuracy from their
original initialisation; Frankle et al. (2020) make it work on larger nets by rewinding to
the weights of an early training step ``k`` instead of step 0. Each round here trains,
prunes ``prune_per_round`` of the remaining weights by global magnitude, rewinds the
survivors to their step-``k`` values and trains again. The controls keep the ticket's
sparsity but either re-initialise the weights randomly (``random_reinit``) or choose the
weights to keep at random (``random_prune``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..core import Config, log, seed_everything
from ..train import Callback, TrainConfig, Trainer, evaluate
from .api import prune_
from .config import MagnitudePruning, RandomPruning
from .masks import KeepMasked, MaskSet


@dataclass
class LotteryConfig(Config):
    """Rounds of prune-and-rewind; sparsity after round r is 1 - (1 - prune_per_round)^r."""

    rounds: int = 5
    prune_per_round: float = 0.2
    rewind_step: int = 0
    controls: bool = True

    def __post_init__(self):
        self.check_range("rounds", 1, None, integer=True)
        self.check_range("prune_per_round", 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        self.check_range("rewind_step", 0, None, integer=True)


class _SnapshotAt(Callback):
    """Keeps a copy of the weights right before optimizer step ``step``."""

    def __init__(self, step: int):
        self.step, self.state = step, None

    def on_step_begin(self, trainer, step: int) -> None:
        if step == self.step and self.state is None:
            self.state = copy.deepcopy(trainer.model.state_dict())

    def on_train_end(self, trainer) -> None:
        if self.state is None:  # training was shorter than the rewind step: use the final weights
            self.state = copy.deepcopy(trainer.model.state_dict())


def _train(model: nn.Module, data, cfg: TrainConfig, masks: MaskSet | None, extra=()) -> float:
    callbacks = ([KeepMasked(masks)] if masks is not None else []) + list(extra)
    Trainer(model, copy.deepcopy(cfg), callbacks=callbacks).fit(data.train)
    return evaluate(model, data.test)["accuracy"]


def _with_weights(model_fn: Callable[[], nn.Module], state: dict, masks: MaskSet) -> nn.Module:
    model = model_fn()
    model.load_state_dict(state)
    masks.apply(model)
    return model


def find_lottery_ticket(model_fn: Callable[[], nn.Module], data, train_cfg: TrainConfig, cfg: LotteryConfig,
                        *, filter_fn=None) -> list[dict]:
    """Run the rounds; returns one record per round (round 0 is the dense network).

    ``model_fn`` builds a fresh, randomly initialised model (it is seeded from
    ``train_cfg.seed``, and with ``seed + 1000 + round`` for the re-initialisation control).
    Accuracy is measured on the whole test split of ``data``.

    Example:
        >>> import deepslim
        >>> data = deepslim.load_dataset("synthetic", subset=300)
        >>> records = find_lottery_ticket(lambda: deepslim.create_model("lenet5"), data,
        ...                               TrainConfig(epochs=1, batch_size=32), LotteryConfig(rounds=1))  # doctest: +SKIP
    """
    seed_everything(train_cfg.seed)
    model = model_fn()
    snapshot = _SnapshotAt(cfg.rewind_step)
    dense_acc = _train(model, data, train_cfg, None, [snapshot])
    rewind_state = snapshot.state
    records = [{"round": 0, "sparsity": 0.0, "ticket": dense_acc}]
    log(f"lottery round 0 (dense): {dense_acc:.2f}%")
    masks: MaskSet | None = None
    for r in range(1, cfg.rounds + 1):
        sparsity = 1.0 - (1.0 - cfg.prune_per_round) ** r
        plan = prune_(model, MagnitudePruning(sparsity=sparsity, scope="global"), masks=masks, filter_fn=filter_fn)
        masks = plan.masks
        ticket = _with_weights(model_fn, rewind_state, masks)
        record = {"round": r, "sparsity": masks.sparsity(), "ticket": _train(ticket, data, train_cfg, masks)}
        if cfg.controls:
            seed_everything(train_cfg.seed + 1000 + r)
            reinit = model_fn()  # same mask, fresh random weights
            masks.apply(reinit)
            record["random_reinit"] = _train(reinit, data, train_cfg, masks)
            random_model = model_fn()
            random_model.load_state_dict(rewind_state)
            random_plan = prune_(random_model, RandomPruning(sparsity=masks.sparsity(), scope="global",
                                                             seed=train_cfg.seed + r), filter_fn=filter_fn)
            record["random_prune"] = _train(random_model, data, train_cfg, random_plan.masks)
        records.append(record)
        model = ticket  # the next round prunes the trained ticket
        log(f"lottery round {r}: sparsity {record['sparsity']:.1%}, ticket {record['ticket']:.2f}%"
            + (f", random re-init {record['random_reinit']:.2f}%, random pruning {record['random_prune']:.2f}%"
               if cfg.controls else ""))
    return records
