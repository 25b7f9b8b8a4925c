"""ENAS one-shot search (Pham et al. 2018) and its controls, on one ``EnasSupernet``.

Every epoch first trains the shared weights, one sampled child per training batch (cross-entropy, SGD with
a cosine schedule and gradient clipping, as ENAS), then, for ``strategy="rl"``, trains the controller for
``controller_steps`` x ``samples_per_update`` samples, each rewarded by its accuracy on the next
``reward_batch`` validation images. After the last epoch the final arch is derived from the rest of the
``evaluations`` budget. A **child evaluation** is always the same thing: shared-weight accuracy on one
validation minibatch, so the three strategies are compared at the same number of them:

- ``rl``: children come from the controller; its training spends ``epochs x controller_steps x
  samples_per_update`` evaluations, the derive step the rest (controller samples, best reward wins);
- ``random``: children are uniform (random search with weight sharing, Li & Talwalkar 2019); the whole
  budget goes to uniformly random candidates at the end;
- ``evolution``: uniform children; regularized evolution spends the budget at the end.

Hardware-aware reward: with ``max_macs`` and/or ``max_params`` a child's reward is ``accuracy / 100 -
penalty_weight x violation`` (the relative excess over the limits, ``controller.penalty_weight``), as
``rl_search``'s; the derive step of every strategy then prefers archs within the limits (the best by accuracy),
else the one that exceeds them least. MACs and params are counted per distinct child (``ChildCosts``).

Resumable: a checkpoint after every epoch holds the shared weights, the optimizer, the controller and where
the run stopped; the sampled children are a pure function of the position, so a resumed run ends as an
uninterrupted one would.

Example:
    >>> from deepslim.testing import tiny_data
    >>> net = EnasSupernet(channels=8, num_layers=3, reduce_after=(0,))
    >>> result = enas_search(net, tiny_data().train, tiny_data().val,
    ...                      EnasConfig(epochs=1, controller_steps=2, evaluations=4, batch_size=32))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core import Config, DeepslimError, log, progress
from ..data import TensorData
from ..data.loader import Augment, BatchLoader
from ..train.checkpoint import save_checkpoint
from .controller import Reinforce, RLConfig
from .enas_cost import ChildCosts
from .enas_supernet import EnasSupernet
from .resume import check_splits, resume_state
from .strategies import Constraints, evolution_search

ENAS_STRATEGIES = ("rl", "random", "evolution")


@dataclass
class EnasConfig(Config):
    """How the shared weights and the controller train, and the child-evaluation budget.

    Defaults follow ENAS's macro search where they transfer (lr 0.05 cosine to 5e-4, weight decay 2.5e-4,
    gradient norm 5, 50 controller steps per epoch); ``controller`` holds the controller's own settings.

    Example:
        >>> EnasConfig(epochs=2, controller_steps=10, evaluations=40).controller_evaluations
        20
    """

    strategy: str = "rl"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    lr_min: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 2.5e-4
    grad_clip: float = 5.0
    augment: bool = True
    channels_last: bool = True  # separable convs train about 1.7x faster on CPU in this memory format
    controller_steps: int = 50
    reward_batch: int = 128
    evaluations: int = 1000
    population: int = 20
    max_macs: float | None = None
    max_params: float | None = None
    controller: RLConfig = field(default_factory=lambda: RLConfig(lr=1e-3, tanh_constant=1.5, temperature=None))
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.controller, dict):
            self.controller = RLConfig(**{k: v for k, v in self.controller.items() if k != "type"})
        self.check_choice("strategy", ENAS_STRATEGIES)
        for name in ("epochs", "batch_size", "controller_steps", "reward_batch", "evaluations"):
            self.check_range(name, 1, None, integer=True)
        self.check_range("population", 2, None, integer=True)
        self.check_range("lr", 0.0, None, low_inclusive=False)
        self.check_range("lr_min", 0.0, None)
        self.check_range("momentum", 0.0, 1.0, high_inclusive=False)
        self.check_range("weight_decay", 0.0, None)
        self.check_range("grad_clip", 0.0, None, low_inclusive=False)
        self.constraints  # noqa: B018 -- checks the limits
        if self.strategy == "rl" and self.evaluations <= self.controller_evaluations:
            raise DeepslimError(f"evaluations = {self.evaluations} is too small: the controller's training takes "
                                f"{self.controller_evaluations} (epochs x controller_steps x samples_per_update) and "
                                "deriving the final arch at least one more",
                                hint=f"give evaluations > {self.controller_evaluations}, or fewer controller steps")

    def to_dict(self) -> dict:
        out = {**super().to_dict(), "controller": self.controller.to_dict()}
        for name in ("max_macs", "max_params"):  # unset limits stay out: checkpoints from before them still resume
            if out[name] is None:
                del out[name]
        return out

    @property
    def constraints(self) -> Constraints:
        return Constraints(max_macs=self.max_macs, max_params=self.max_params)

    @property
    def controller_evaluations(self) -> int:
        return self.epochs * self.controller_steps * self.controller.samples_per_update if self.strategy == "rl" else 0


@dataclass
class EnasResult:
    """The derived arch with its shared-weight reward, the budget spent, per-epoch history, the controller's
    curve (rl) and every derive-step candidate."""

    best: dict
    strategy: str
    evaluations: int
    history: list[dict]
    controller: list[dict]
    candidates: list[dict]
    seconds: float

    def to_dict(self) -> dict:
        return {"best": self.best, "strategy": self.strategy, "evaluations": self.evaluations,
                "history": self.history, "controller": self.controller, "candidates": self.candidates,
                "seconds": self.seconds}


def _generator(seed: int, *position: int) -> torch.Generator:
    # a pure function of where training is, so a resumed run samples the same children
    value = seed
    for p in position:
        value = value * 1_000_003 + p
    return torch.Generator().manual_seed(value % (2 ** 63))


class _Rewarder:
    """Shared-weight accuracy (%) of a child on the next ``size`` validation images, cycling; counts calls.
    ``judge`` adds the child's MACs/params and its violation of ``constraints`` when any limit is set."""

    def __init__(self, supernet: EnasSupernet, val: TensorData, size: int, device,
                 constraints: Constraints | None = None):
        self.supernet, self.val, self.size, self.device = supernet, val, min(size, len(val)), device
        self.cursor, self.count = 0, 0
        self.constraints = constraints or Constraints()
        self.costs = ChildCosts(supernet.space, tuple(val.images.shape[1:])) if self.constraints.active() else None

    def judge(self, arch) -> dict:
        record = {"accuracy": self(arch)}
        if self.costs is not None:
            record.update(self.costs(arch))
            record["violation"] = self.constraints.violation(record)
        return record

    @torch.no_grad()
    def __call__(self, arch) -> float:
        idx = torch.arange(self.cursor, self.cursor + self.size) % len(self.val)
        self.cursor = int(idx[-1] + 1) % len(self.val)
        self.count += 1
        x, y = self.val.images[idx].to(self.device), self.val.labels[idx].to(self.device)
        # batch statistics, as ENAS rewards children; dropout off, so a reward depends on nothing random
        self.supernet.train()
        for module in self.supernet.modules():
            if isinstance(module, torch.nn.Dropout):
                module.eval()
        return float((self.supernet(x, arch).argmax(1) == y).float().mean() * 100)


def enas_search(supernet: EnasSupernet, train: TensorData, val: TensorData, config: EnasConfig | None = None, *,
                checkpoint: str | Path | None = None, resume: bool = False, device="cpu") -> EnasResult:
    """Train ``supernet``'s shared weights (and, for ``rl``, the controller) for ``config.epochs``, then
    derive the best child within the evaluation budget. See the module docstring."""
    config = config or EnasConfig()
    check_splits("enas_search", config.batch_size, "EnasConfig", train=train, val=val)
    space = supernet.space
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    supernet.to(device).to(memory_format=memory_format)
    identity = {"space": space.to_dict(), "config": config.to_dict()}
    agent = Reinforce(space, config.controller, _generator(config.seed, 0)) if config.strategy == "rl" else None
    optimizer = torch.optim.SGD(supernet.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=config.momentum > 0, weight_decay=config.weight_decay)
    rewarder = _Rewarder(supernet, val, config.reward_batch, device, config.constraints)
    penalty = config.controller.penalty_weight
    history, curve, start, earlier_seconds = [], [], 0, 0.0
    path = Path(checkpoint) if checkpoint is not None else None
    if resume and path is not None and path.is_file():
        state = resume_state(path, identity, "EnasConfig")
        supernet.load_state_dict(state["supernet"])
        optimizer.load_state_dict(state["optimizer"])
        if agent is not None:
            agent.load_state_dict(state["agent"])
        start, history, curve = state["epoch"], state["history"], state["curve"]
        rewarder.cursor, rewarder.count = state["cursor"], state["evaluations"]
        earlier_seconds = state["seconds"]
        log(f"resuming ENAS search after epoch {start}")
    loader = BatchLoader(train, config.batch_size, shuffle=True, drop_last=True, seed=config.seed, device=device,
                         augment=Augment() if config.augment else None)
    steps = config.epochs * len(loader)
    started = time.perf_counter()
    for epoch in range(start, config.epochs):
        epoch_started, total = time.perf_counter(), 0.0
        loader.set_epoch(epoch)
        torch.manual_seed(config.seed * 100_003 + epoch)  # dropout, so resume is exact
        supernet.train()
        for step, (x, y) in enumerate(progress(loader, desc=f"shared weights {epoch + 1}/{config.epochs}")):
            for group in optimizer.param_groups:
                t = (epoch * len(loader) + step) / steps
                group["lr"] = config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * t))
            generator = _generator(config.seed, 1, epoch, step)
            with torch.no_grad():
                arch = agent.sample(generator)[0] if agent is not None else space.sample(generator)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(supernet(x.contiguous(memory_format=memory_format), arch), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(supernet.parameters(), config.grad_clip)
            optimizer.step()
            total += loss.item()
        if agent is not None:
            for step in range(config.controller_steps * config.controller.samples_per_update):
                arch, log_prob, entropy = agent.sample(_generator(config.seed, 2, epoch, step))
                judged = rewarder.judge(arch)
                value = judged["accuracy"] / 100 - penalty * judged.get("violation", 0.0)
                curve.append({"epoch": epoch + 1, **judged, **agent.reward(log_prob, entropy, value)})
        record = {"epoch": epoch + 1, "loss": total / len(loader), "seconds": time.perf_counter() - epoch_started}
        if curve:
            last = curve[-config.controller_steps * config.controller.samples_per_update:]
            record.update(reward=sum(r["reward"] for r in last) / len(last), entropy=last[-1]["entropy"])
        history.append(record)
        log(f"ENAS epoch {epoch + 1}/{config.epochs}: loss {record['loss']:.4f}"
            + (f", controller reward {record['reward']:.3f}, entropy {record['entropy']:.2f}" if curve else "")
            + f" ({record['seconds']:.0f} s)")
        if path is not None:
            save_checkpoint(path, {**identity, "epoch": epoch + 1, "supernet": supernet.state_dict(),
                                   "optimizer": optimizer.state_dict(), "history": history, "curve": curve,
                                   "cursor": rewarder.cursor, "evaluations": rewarder.count,
                                   "seconds": earlier_seconds + time.perf_counter() - started,
                                   "agent": agent.state_dict() if agent is not None else None})
    best, candidates = _derive(supernet, agent, rewarder, config)
    supernet.to(memory_format=torch.contiguous_format)
    # seconds: the whole search, epochs run before an interruption included
    return EnasResult(best, config.strategy, rewarder.count, history, curve, candidates,
                      round(earlier_seconds + time.perf_counter() - started, 1))


def _derive(supernet: EnasSupernet, agent: Reinforce | None, rewarder: _Rewarder, config: EnasConfig):
    """Spend what is left of the evaluation budget choosing the final arch; returns (best, candidates)."""
    space = supernet.space
    left = config.evaluations - rewarder.count
    if config.strategy == "evolution":
        population = max(2, min(config.population, left))
        result = evolution_search(space, rewarder.judge, left, config.constraints, population=population,
                                  sample_size=min(5, population), seed=config.seed)
        candidates = result.history
    else:
        candidates = []
        for i in range(left):
            generator = _generator(config.seed, 3, i)
            with torch.no_grad():
                arch = agent.sample(generator)[0] if agent is not None else space.sample(generator)
            candidates.append({"arch": arch.to_dict(), **rewarder.judge(arch)})
    # within the limits by accuracy, above archs over them, which rank by how little they exceed (as _Search)
    best = max(candidates, key=lambda c: (c.get("violation", 0.0) == 0.0, -c.get("violation", 0.0), c["accuracy"]))
    chosen = {"arch": best["arch"], "reward_accuracy": best["accuracy"]}
    if rewarder.costs is not None:
        chosen.update({k: best[k] for k in ("macs", "params", "violation")})
    return chosen, candidates
