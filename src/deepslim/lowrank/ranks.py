"""Which layers can be factorized, and at which rank.

A ``Candidate`` is one layer with what rank selection needs: the effective method, its
singular values and its MACs as a function of rank. Ranks come from kept energy, from
a whole-model MAC target (the same kept energy everywhere, found by bisection), or from
a per-layer sensitivity sweep (greedy: least accuracy loss per MAC saved). A layer is only
factorized at a rank that actually lowers its MACs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..core import DeepslimError, progress, set_submodule
from ..core.greedy import greedy_allocate
from ..core.registry import near_matches
from ..prune.select import check_names_exist, classifier_head
from ..train.evaluate import top1_accuracy
from .config import Factorization
from .cost import factorized_macs, layer_macs, record_shapes
from .decompose import CONVS, singular_values

SENSITIVITY_FRACTIONS = (0.75, 0.5, 0.375, 0.25, 0.125, 0.0625)


@dataclass
class Candidate:
    name: str
    layer: nn.Module
    method: str
    in_shape: tuple
    out_shape: tuple
    svals: list  # one tensor (svd, spatial) or two (tucker: output mode, input mode)

    @property
    def macs(self) -> int:
        return layer_macs(self.layer, self.in_shape, self.out_shape)

    def full_rank(self):
        ranks = [len(s) for s in self.svals]
        return ranks[0] if len(ranks) == 1 else tuple(ranks)

    def macs_at(self, rank) -> int:
        return factorized_macs(self.layer, self.method, rank, self.in_shape, self.out_shape)

    def rank_for_energy(self, energy: float):
        ranks = []
        for s in self.svals:
            kept = torch.cumsum(s ** 2, 0) / (s ** 2).sum().clamp_min(1e-30)
            wanted = torch.tensor(energy - 1e-12, dtype=kept.dtype, device=kept.device)  # same device as kept
            ranks.append(min(int(torch.searchsorted(kept, wanted)) + 1, len(s)))
        return ranks[0] if len(ranks) == 1 else tuple(ranks)

    def rank_at_fraction(self, fraction: float):
        ranks = [max(1, math.ceil(fraction * len(s))) for s in self.svals]
        return ranks[0] if len(ranks) == 1 else tuple(ranks)

    def energy_at(self, rank) -> float:
        ranks = rank if isinstance(rank, tuple) else (rank,)
        kept = [float((s[:r] ** 2).sum() / (s ** 2).sum().clamp_min(1e-30)) for s, r in zip(self.svals, ranks)]
        return min(kept)

    def saves(self, rank) -> bool:
        return self.macs_at(rank) < self.macs


def effective_method(layer: nn.Module, method: str) -> str | None:
    """The decomposition ``layer`` gets under ``method``; ``None`` when it cannot be factorized."""
    if isinstance(layer, nn.Linear):
        return "svd"
    if not isinstance(layer, CONVS) or layer.groups != 1:
        return None
    kernel = layer.kernel_size
    if method == "spatial":
        return "spatial" if isinstance(layer, nn.Conv2d) and kernel[0] > 1 and kernel[1] > 1 else "svd"
    if method == "tucker":
        return "tucker" if math.prod(kernel) > 1 else "svd"
    return "svd"


def _skip_reason(layer: nn.Module) -> str:
    if isinstance(layer, CONVS) and layer.groups != 1:
        return f"grouped conv (groups={layer.groups}): each filter sees too few inputs to factor"
    return f"{type(layer).__name__} is not a conv or linear layer"


def find_candidates(model: nn.Module, config: Factorization,
                    example_inputs) -> tuple[list[Candidate], dict[str, str]]:
    """Layers ``config`` selects that can be factorized, and the skipped ones with the reason."""
    modules = dict(model.named_modules())
    head = classifier_head(model)
    if config.layers is not None:
        check_names_exist(model, config.layers)
        for name in config.layers:
            if name in modules and not isinstance(modules[name], (nn.Linear, *CONVS)):
                raise DeepslimError(f"layer '{name}' is a {type(modules[name]).__name__}, not a conv or linear layer",
                                    hint="factorization applies to Conv1d/2d/3d and Linear layers")
    for name in config.ranks:
        if name not in modules:
            close = near_matches(name, [n for n in modules if n])
            raise DeepslimError(f"the model has no layer '{name}'",
                                hint=f"did you mean {', '.join(repr(c) for c in close)}?" if close else None)
    names, skipped = [], {}
    for name, module in modules.items():
        if not isinstance(module, (nn.Linear, *CONVS)):
            continue
        explicit = name in config.ranks or (config.layers is not None and name in config.layers)
        if config.ranks and name not in config.ranks:
            continue
        if config.layers is not None and not any(name == p or _full_match(p, name) for p in config.layers):
            continue
        if name == head and not explicit:
            continue  # the classifier head stays whole unless named
        if effective_method(module, config.method) is None:
            if explicit:
                raise DeepslimError(f"layer '{name}' cannot be factorized: {_skip_reason(module)}",
                                    hint="leave it out of layers/ranks")
            skipped[name] = _skip_reason(module)
            continue
        names.append(name)
    shapes = record_shapes(model, example_inputs, names)
    candidates = []
    for name in names:
        if name not in shapes:
            skipped[name] = "not called in the forward pass"
            continue
        layer = modules[name]
        method = effective_method(layer, config.method)
        candidates.append(Candidate(name, layer, method, *shapes[name], singular_values(layer, method)))
    return candidates, skipped


def _full_match(pattern: str, name: str) -> bool:
    import re

    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


def ranks_for_energy(candidates: list[Candidate], energy: float) -> dict[str, object]:
    """Each layer's smallest rank keeping ``energy``, for the layers where that saves MACs."""
    ranks = {c.name: c.rank_for_energy(energy) for c in candidates}
    return {name: rank for name, rank in ranks.items() if _by_name(candidates, name).saves(rank)}


def _by_name(candidates: list[Candidate], name: str) -> Candidate:
    return next(c for c in candidates if c.name == name)


def predicted_macs(candidates: list[Candidate], ranks: dict, baseline_macs: int) -> int:
    return baseline_macs - sum(c.macs - c.macs_at(ranks[c.name]) for c in candidates if c.name in ranks)


def ranks_for_mac_ratio(candidates: list[Candidate], target_macs: float, baseline_macs: int,
                        skipped: dict[str, str]) -> dict[str, object]:
    """The largest common kept energy whose ranks bring the model's MACs to ``target_macs``."""
    floor = {c.name: (1 if c.method != "tucker" else (1, 1)) for c in candidates}
    floor = {n: r for n, r in floor.items() if _by_name(candidates, n).saves(r)}
    if predicted_macs(candidates, floor, baseline_macs) > target_macs:
        _unreachable(candidates, target_macs, baseline_macs, skipped, predicted_macs(candidates, floor, baseline_macs))
    low, high = 0.0, 1.0
    best = floor
    for _ in range(40):
        mid = (low + high) / 2
        ranks = ranks_for_energy(candidates, mid)
        if predicted_macs(candidates, ranks, baseline_macs) <= target_macs:
            best, low = ranks, mid
        else:
            high = mid
    return best


def _unreachable(candidates, target_macs, baseline_macs, skipped, lowest) -> None:
    fixed = baseline_macs - sum(c.macs for c in candidates)
    stuck = ", ".join(f"{n} ({r})" for n, r in list(skipped.items())[:6]) or "none"
    raise DeepslimError(
        f"no ranks reach {target_macs / baseline_macs:.3f} of the model's MACs: even rank 1 everywhere leaves "
        f"{lowest:,} of {baseline_macs:,} MACs ({lowest / baseline_macs:.3f}); {fixed:,} MACs sit in layers that "
        f"cannot shrink (the classifier head, other ops; skipped: {stuck})",
        hint="ask for a larger mac_ratio, or combine with channel pruning")


@torch.no_grad()
def ranks_by_sensitivity(model: nn.Module, candidates: list[Candidate], target_macs: float, baseline_macs: int,
                         val_data, build, skipped: dict[str, str],
                         fractions=SENSITIVITY_FRACTIONS) -> tuple[dict[str, object], list[dict]]:
    """Greedy per-layer ranks from measured accuracy drops; returns the ranks and the sweep rows."""
    if val_data is None:
        raise DeepslimError("selection='sensitivity' needs validation data", hint="pass val_data=data.val")
    images, labels = val_data.images, val_data.labels
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    images, labels = images.to(device), labels.to(device)
    base_acc = top1_accuracy(model.eval(), images, labels)
    steps, rows = {}, []
    for cand in progress(candidates, desc="rank sensitivity"):
        options = []
        for fraction in fractions:
            rank = cand.rank_at_fraction(fraction)
            if not cand.saves(rank) or any(o[0] == rank for o in options):
                continue
            trial = copy.deepcopy(model)
            set_submodule(trial, cand.name, build(cand, rank))
            drop = base_acc - top1_accuracy(trial.eval(), images, labels)
            macs = baseline_macs - (cand.macs - cand.macs_at(rank))
            options.append((rank, drop, macs))
            rows.append({"layer": cand.name, "rank": rank, "fraction": fraction, "drop": drop, "macs": macs})
        if options:
            steps[cand.name] = options
    floor = {n: opts[-1][0] for n, opts in steps.items()}
    if predicted_macs(candidates, floor, baseline_macs) > target_macs:
        _unreachable(candidates, target_macs, baseline_macs, skipped, predicted_macs(candidates, floor, baseline_macs))
    chosen = greedy_allocate(steps, baseline_macs, target_macs)
    return {name: steps[name][i][0] for name, i in chosen.items()}, rows
