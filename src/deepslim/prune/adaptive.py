"""Channel pruning to a MAC budget by measuring whole pruned models step by step (NetAdapt-style).

``sensitivity_scan`` + ``ratios_for_budget`` predict the loss of a combination of per-layer
ratios by adding up single-layer drops. On the flagship that prediction broke down at 1/4 of
the MACs: layers pruned together lose far more than the sum of their drops, and the
allocation it chose was worse than one uniform ratio even before fine-tuning (BENCHMARKS.md).

``adaptive_prune_`` walks to the budget instead (Yang et al., 2018, "NetAdapt"): at every
step each group of coupled channels proposes to shrink by enough to save about ``step`` of
the original MACs; each proposal is pruned from the current model, its BatchNorm statistics
re-estimated and its validation accuracy measured; the proposal that loses the least
accuracy per MAC saved becomes the current model, optionally after a short fine-tune
(``finetune_images``). Without those fine-tunes a greedy walk is myopic at small budgets: on
the flagship it drove the cheapest layers to 90% pruned and the model to 14% before the
final fine-tune (BENCHMARKS.md).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from ..core import DeepslimError, log
from ..profiling.counting import count_ops
from ..train.batchnorm import recalibrate_batchnorm_
from ..train.evaluate import top1_accuracy
from .api import PruningPlan, prune_
from .config import ChannelPruning
from .masks import MaskSet
from .probing import coupled_groups, short_finetune
from .select import PRUNABLE, check_names_exist


@dataclass
class AdaptiveResult:
    """Per-layer ratios reached (fractions of the original channels removed) and the walk to them."""

    ratios: dict[str, float]
    baseline_accuracy: float
    baseline_macs: int
    macs: int
    accuracy: float                                      # validation accuracy after the walk
    history: list[dict] = field(default_factory=list)    # one row per step: group, ratio, macs, accuracy
    milestones: list[dict] = field(default_factory=list)  # the state on first reaching each larger budget
    milestone_models: dict = field(default_factory=dict, repr=False)  # budget -> nn.Module at that point
    plan: PruningPlan | None = field(default=None, repr=False)          # shapes before/after, params, MACs

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("milestone_models", "plan")}

    def model_at(self, budget: float) -> nn.Module:
        """A copy of the model as it stood on first meeting ``budget`` (one of the ``milestones``)."""
        if budget not in self.milestone_models:
            known = ", ".join(f"{m:,.0f}" for m in self.milestone_models) or "none"
            raise DeepslimError(f"no milestone at {budget:,.0f} MACs", hint=f"milestones: {known}")
        return copy.deepcopy(self.milestone_models[budget])


def _width(model: nn.Module, name: str) -> int:
    return model.get_submodule(name).weight.shape[0]


def adaptive_prune_(model: nn.Module, val_data, target_macs: float, example_inputs, *,
                    calibration_images: torch.Tensor | None = None, step: float = 0.05,
                    importance: str = "l2", max_ratio: float = 0.9, round_to: int | None = None,
                    layers: list[str] | None = None, milestones=(), train_data=None,
                    finetune_images: int = 0, finetune_lr: float = 0.01, batch_size: int = 128) -> AdaptiveResult:
    """Prune ``model``'s channels in place until it has at most ``target_macs`` MACs, choosing by measurement.

    ``step``: MACs removed per step as a fraction of the original (smaller: more steps, finer
    choices). ``calibration_images`` (a few thousand training images) re-estimate BatchNorm
    statistics in every trial; strongly recommended for BN networks. ``finetune_images`` > 0
    fine-tunes the chosen model of each step on that many images of ``train_data`` (SGD,
    ``finetune_lr``), NetAdapt's short-term fine-tune. ``round_to`` keeps channel counts
    multiples of it (ONNX Runtime's conv kernels run much slower on odd counts).
    ``milestones`` (MAC counts above the target) are met exactly on the way and a copy of the
    model kept at each (``result.model_at(budget)``): one walk serves several budgets. The
    model is left untouched if the walk fails.

    Example:
        >>> import deepslim, torch
        >>> data = deepslim.load_dataset("synthetic", subset=200)
        >>> model, x = deepslim.create_model("lenet5"), torch.randn(1, 1, 28, 28)
        >>> macs = deepslim.profiling.count_ops(model, (x,)).macs
        >>> r = adaptive_prune_(model, data.val, 0.6 * macs, x, step=0.2)
        >>> deepslim.profiling.count_ops(model, (x,)).macs == r.macs <= 0.6 * macs
        True
    """
    if not 0 < step < 1:
        raise DeepslimError(f"step {step} must lie in (0, 1)", hint="e.g. step=0.05 (5% of the original MACs)")
    if not 0 < max_ratio < 1:
        raise DeepslimError(f"max_ratio {max_ratio} must lie in (0, 1)")
    if finetune_images and train_data is None:
        raise DeepslimError("finetune_images needs train_data", hint="pass train_data=data.train")
    if layers is not None:
        check_names_exist(model, layers)
    current = copy.deepcopy(model).eval()
    device = next((p.device for p in current.parameters()), torch.device("cpu"))
    images, labels = val_data.images.to(device), val_data.labels.to(device)
    base_macs = count_ops(current, example_inputs).macs
    if target_macs >= base_macs:
        raise DeepslimError(f"the MAC budget {target_macs:,.0f} is not below the model's {base_macs:,}")
    base_acc = top1_accuracy(current, images, labels)
    groups = coupled_groups(current, example_inputs, layers, importance)
    if not groups:
        raise DeepslimError("no layer of this model can be channel-pruned",
                            hint="check the model has prunable conv/linear layers outside the head")
    original = {lead: _width(current, lead) for lead in groups}
    shapes_before = {n: list(m.weight.shape) for n, m in current.named_modules() if isinstance(m, PRUNABLE)}
    params_before = sum(p.numel() for p in current.parameters())

    def removed(net: nn.Module, lead: str) -> float:
        return 1.0 - _width(net, lead) / original[lead]

    def shrink(lead: str, delta: float) -> tuple[nn.Module, PruningPlan]:
        """``current`` with ``delta`` more of ``lead``'s original channels removed."""
        pruned = copy.deepcopy(current)
        relative = min(delta / (1.0 - removed(current, lead)), 0.999)
        plan = prune_(pruned, ChannelPruning(ratio=0.0, importance=importance, round_to=round_to,
                                             per_layer={lead: relative}),
                      example_inputs=example_inputs, skip_head=False)
        return pruned, plan

    slope: dict[str, float] = {}          # MACs saved per unit of ratio, per group (last measured)
    exhausted: set[str] = set()
    macs, acc = base_macs, base_acc
    result = AdaptiveResult({}, base_acc, base_macs, base_macs, base_acc)
    stops = sorted({float(m) for m in milestones if target_macs < m < base_macs} | {float(target_macs)}, reverse=True)
    while macs > target_macs:
        want = min(step * base_macs, macs - next(m for m in stops if m < macs))
        enough = min(want, 0.5 * step * base_macs)  # a short last step must reach its stop
        best = None
        for lead in groups:
            room = max_ratio - removed(current, lead)
            if lead in exhausted or room <= 1e-9:
                continue
            delta = want / slope[lead] if slope.get(lead) else 0.1
            for _ in range(6):  # widen the proposal until it saves enough (or the group is at max_ratio)
                delta = min(delta, room)
                pruned, plan = shrink(lead, delta)
                saving = macs - plan.macs_after
                if saving > 0:
                    slope[lead] = saving / delta
                if saving >= enough or delta >= room - 1e-9:
                    break
                delta = want / slope[lead] if saving > 0 else delta * 2
            if saving <= 0:
                exhausted.add(lead)
                continue
            if calibration_images is not None:
                recalibrate_batchnorm_(pruned, calibration_images)
            trial_acc = top1_accuracy(pruned.eval(), images, labels)
            score = (acc - trial_acc) / saving  # a gain (noise, or BN re-estimated) ranks best
            if best is None or score < best[0]:
                best = (score, lead, pruned, plan.macs_after, trial_acc)
        if best is None:
            raise DeepslimError(f"cannot reach {target_macs:,.0f} MACs: every group is at max_ratio {max_ratio} "
                                f"(reached {macs:,})", hint="raise max_ratio or ask for a larger budget")
        _, lead, current, macs, acc = best
        if finetune_images:
            short_finetune(current, train_data, finetune_images, lr=finetune_lr, batch_size=batch_size,
                           offset=len(result.history) * finetune_images)
            acc = top1_accuracy(current, images, labels)
        result.history.append({"group": groups[lead], "ratio": round(removed(current, lead), 4), "macs": macs,
                               "accuracy": acc})
        log(f"adaptive pruning step {len(result.history)}: {lead} -> {removed(current, lead):.3f} removed, "
            f"{macs / 1e6:.2f}M MACs (target {target_macs / 1e6:.2f}M), {acc:.2f}% validation")
        for m in stops[:-1]:
            if macs <= m and m not in result.milestone_models:
                result.milestone_models[m] = copy.deepcopy(current)
                result.milestones.append({"budget": m, "macs": macs, "accuracy": acc,
                                          "ratios": _ratios(current, groups, removed)})
    result.ratios = _ratios(current, groups, removed)
    result.macs, result.accuracy = macs, acc
    shapes = {n: list(m.weight.shape) for n, m in current.named_modules() if isinstance(m, PRUNABLE)}
    result.plan = PruningPlan(ChannelPruning(ratio=0.0, importance=importance, round_to=round_to), MaskSet(),
                              {n: {"before": b, "after": shapes.get(n, [])} for n, b in shapes_before.items()
                               if shapes.get(n) != b},
                              params_before, sum(p.numel() for p in current.parameters()), base_macs, macs)
    model.__dict__.update(current.__dict__)  # the walk's model replaces the input's modules in place
    return result


def _ratios(net: nn.Module, groups: dict[str, list[str]], removed) -> dict[str, float]:
    return {name: round(removed(net, lead), 4) for lead, members in groups.items() for name in members
            if removed(net, lead) > 0}
