"""Progressive shrinking (Cai et al., "Once-for-All", 2020): train the largest net, then make kernel size,
depth and expand ratio elastic in turn, each step training subnets sampled from the dimensions elastic so
far, with knowledge distillation from a frozen copy of the largest net.

Resumable per phase and epoch: after every epoch a checkpoint (supernet, optimizer, teacher, where it
stopped) is written atomically; ``resume=True`` continues from it, and a resumed run sees exactly the
batches, augmentations and subnets the uninterrupted run would have seen.

Example:
    >>> from deepslim.testing import tiny_data
    >>> from deepslim.nas import OFASupernet
    >>> net = OFASupernet(widths=(8, 8, 16, 16), head_channels=32)
    >>> cfg = ShrinkingConfig(epochs_largest=1, epochs_kernel=1, epochs_depth=1, epochs_expand=1, batch_size=64)
    >>> history = progressive_shrinking(net, tiny_data().train, cfg)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core import Config, log, progress, resolve_device
from ..data import TensorData
from ..data.loader import Augment, BatchLoader
from ..distill.losses import kd_loss
from ..train.checkpoint import save_checkpoint
from .resume import check_splits, resume_state
from .supernet import OFASupernet, sort_channels_

PHASES = ("largest", "kernel", "depth", "expand")


@dataclass
class ShrinkingConfig(Config):
    """Epochs per phase and how each step trains.

    Each phase has its own SGD (Nesterov) optimizer and cosine schedule from its learning rate. A step
    trains ``subnets_per_step`` sampled subnets on the same batch (gradients accumulate), with
    ``kd_loss(temperature, alpha)`` against the largest net's logits once that net is trained.
    ``channels_last`` trains in that memory format: depthwise convs train about 2x faster on CPU.

    Example:
        >>> ShrinkingConfig(epochs_largest=4, epochs_kernel=2, epochs_depth=2, epochs_expand=2)
        ShrinkingConfig(epochs_largest=4, ...)
    """

    # ~129 min on the 2-core machine by measured per-phase epoch times (docs/nas.md), under the 2.5 h budget
    epochs_largest: int = 15
    epochs_kernel: int = 6
    epochs_depth: int = 8
    epochs_expand: int = 10
    batch_size: int = 128
    lr_largest: float = 0.1
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 3e-5
    subnets_per_step: int = 2
    kd_temperature: float = 1.0
    kd_alpha: float = 0.5
    sort_channels: bool = True
    augment: bool = True
    channels_last: bool = True
    seed: int = 0

    def __post_init__(self):
        for phase in PHASES:
            self.check_range(f"epochs_{phase}", 0, None, integer=True)
        self.check_range("batch_size", 1, None, integer=True)
        self.check_range("lr_largest", 0.0, None, low_inclusive=False)
        self.check_range("lr", 0.0, None, low_inclusive=False)
        self.check_range("momentum", 0.0, 1.0, high_inclusive=False)
        self.check_range("weight_decay", 0.0, None)
        self.check_range("subnets_per_step", 1, None, integer=True)
        self.check_range("kd_temperature", 0.0, None, low_inclusive=False)
        self.check_range("kd_alpha", 0.0, 1.0)
        self.check_range("seed", 0, None, integer=True)

    def epochs(self, phase: str) -> int:
        return getattr(self, f"epochs_{phase}")


def phase_sampler(supernet: OFASupernet, phase: str):
    """The arch sampler of a phase: the dimensions made elastic so far vary, the others stay largest."""
    space = supernet.space
    if phase == "largest":
        return lambda generator: space.largest()
    restrict = {"kernel": dict(depths=(space.max_depth,), expands=(max(space.expand_choices),)),
                "depth": dict(expands=(max(space.expand_choices),)), "expand": {}}[phase]
    return lambda generator: space.sample(generator, **restrict)


def _step_generator(seed: int, phase: int, epoch: int, step: int) -> torch.Generator:
    # a pure function of where training is, so a resumed run samples the same subnets
    return torch.Generator().manual_seed(((seed * 7 + phase) * 100_003 + epoch) * 1_000_003 + step)


def progressive_shrinking(supernet: OFASupernet, train: TensorData, config: ShrinkingConfig | None = None, *,
                          checkpoint: str | Path | None = None, resume: bool = False, device="cpu",
                          max_epochs: int | None = None) -> list[dict]:
    """Train ``supernet`` in place through the phases largest -> kernel -> depth -> expand.

    ``checkpoint`` is a file written after every epoch; with ``resume=True`` training continues from it
    (a checkpoint of another space or config is refused). ``max_epochs`` stops after that many epochs of
    this call (the checkpoint lets a later call go on). Returns one dict per epoch trained:
    ``{"phase", "epoch", "loss", "seconds"}``. The largest arch is active afterwards.
    """
    config = config or ShrinkingConfig()
    check_splits("progressive_shrinking", config.batch_size, "ShrinkingConfig", train=train)
    dev = resolve_device(device)
    supernet.to(dev)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    supernet.to(memory_format=memory_format)
    space = {**supernet.space.to_dict(), "kernel_transform": supernet.init_args.get("kernel_transform")}
    identity = {"space": space, "config": config.to_dict()}
    path = Path(checkpoint) if checkpoint is not None else None
    start_phase, start_epoch, teacher_state = 0, 0, None
    state = None
    if resume and path is not None and path.is_file():
        state = resume_state(path, identity, "ShrinkingConfig")
        supernet.load_state_dict(state["supernet"])
        start_phase, start_epoch, teacher_state = state["phase"], state["epoch"], state.get("teacher")
        log(f"resuming progressive shrinking at phase '{PHASES[start_phase]}', epoch {start_epoch}")
    loader = BatchLoader(train, config.batch_size, shuffle=True, drop_last=True, seed=config.seed, device=dev,
                         augment=Augment() if config.augment else None)
    history: list[dict] = []
    trained = 0
    for p in range(start_phase, len(PHASES)):
        phase, epochs = PHASES[p], config.epochs(PHASES[p])
        first = start_epoch if p == start_phase else 0
        if first >= epochs:
            continue
        if phase == "expand" and config.sort_channels and first == 0:
            sort_channels_(supernet)  # before the optimizer exists: nothing else holds per-channel state
        teacher = None
        if phase != "largest":
            teacher = _teacher(supernet, teacher_state)
            teacher_state = teacher.state_dict()
        lr = config.lr_largest if phase == "largest" else config.lr
        optimizer = torch.optim.SGD(supernet.parameters(), lr=lr, momentum=config.momentum, nesterov=True,
                                    weight_decay=config.weight_decay)
        if state is not None and p == start_phase and first > 0:
            optimizer.load_state_dict(state["optimizer"])
        sample = phase_sampler(supernet, phase)
        steps = epochs * len(loader)
        for epoch in range(first, epochs):
            if max_epochs is not None and trained >= max_epochs:
                supernet.set_active(supernet.space.largest())
                supernet.to(memory_format=torch.contiguous_format)
                return history
            started, total, count = time.perf_counter(), 0.0, 0
            loader.set_epoch(p * 10_000 + epoch)
            torch.manual_seed(config.seed * 100_003 + p * 10_000 + epoch)  # dropout, so resume is exact
            supernet.train()
            for step, (x, y) in enumerate(progress(loader, desc=f"{phase} {epoch + 1}/{epochs}")):
                x = x.contiguous(memory_format=memory_format)
                for group in optimizer.param_groups:  # cosine over the phase, a pure function of the step
                    group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * (epoch * len(loader) + step) / steps))
                optimizer.zero_grad(set_to_none=True)
                target = None
                if teacher is not None:
                    with torch.no_grad():
                        target = teacher(x)
                generator = _step_generator(config.seed, p, epoch, step)
                n = 1 if phase == "largest" else config.subnets_per_step
                for _ in range(n):
                    supernet.set_active(sample(generator))
                    logits = supernet(x)
                    loss = F.cross_entropy(logits, y) if target is None else \
                        kd_loss(logits, target, y, config.kd_temperature, config.kd_alpha)
                    (loss / n).backward()
                    total, count = total + loss.item(), count + 1
                optimizer.step()
            trained += 1
            record = {"phase": phase, "epoch": epoch + 1, "loss": total / max(1, count),
                      "seconds": time.perf_counter() - started}
            history.append(record)
            log(f"{phase} epoch {epoch + 1}/{epochs}: loss {record['loss']:.4f} ({record['seconds']:.0f} s)")
            if path is not None:
                save_checkpoint(path, {**identity, "phase": p, "epoch": epoch + 1, "supernet": supernet.state_dict(),
                                       "optimizer": optimizer.state_dict(), "teacher": teacher_state})
    supernet.set_active(supernet.space.largest())
    supernet.to(memory_format=torch.contiguous_format)
    return history


def _teacher(supernet: OFASupernet, state: dict | None) -> OFASupernet:
    """A frozen copy of the largest net: from the checkpoint when resuming, else the supernet as it is now."""
    teacher = copy.deepcopy(supernet)
    if state is not None:
        teacher.load_state_dict(state)
    teacher.set_active(teacher.space.largest())
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
