"""Per-layer channel ratios for a MAC budget, found by measuring whole pruned models (NetAdapt-style).

``sensitivity_scan`` + ``ratios_for_budget`` predict the loss of a combination of per-layer
ratios by adding up single-layer drops. On the flagship that prediction broke down at 1/4 of
the MACs: layers pruned together lose far more than the sum of their drops, and the
allocation it chose was worse than one uniform ratio even before fine-tuning (BENCHMARKS.md).

``adaptive_ratios`` instead walks towards the budget in steps (Yang et al., 2018, "NetAdapt",
without the per-step fine-tune): at every step each group of coupled channels proposes to
shrink by enough to save about ``step`` of the baseline MACs, the *whole* model with that
proposal is pruned from the original weights, its BatchNorm statistics re-estimated and its
validation accuracy measured, and the proposal that loses the least accuracy per MAC saved is
kept. Interactions between layers are therefore measured, not assumed away.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from ..core import DeepslimError, log
from ..train.batchnorm import recalibrate_batchnorm_
from ..train.evaluate import top1_accuracy
from .api import PruningPlan, prune_
from .config import ChannelPruning
from .select import check_names_exist, select_layers


@dataclass
class AdaptiveResult:
    """Ratios per layer (relative to the original widths) and the path that led to them."""

    ratios: dict[str, float]
    round_to: int | None
    baseline_accuracy: float
    baseline_macs: int
    macs: int
    accuracy: float                                   # validation accuracy before any fine-tune
    history: list[dict] = field(default_factory=list)  # one row per step: group, ratio, macs, accuracy
    milestones: list[dict] = field(default_factory=list)  # the state on first reaching each larger budget

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def at(self, budget: float) -> "AdaptiveResult":
        """The result as it stood on first meeting ``budget``, one of the ``milestones`` asked for.

        Example:
            >>> r = AdaptiveResult({}, None, 90.0, 100, 25, 80.0, milestones=[
            ...     {"budget": 50, "ratios": {"a": 0.3}, "macs": 49, "accuracy": 88.0}])
            >>> r.at(50).macs
            49
        """
        for m in self.milestones:
            if m["budget"] == budget:
                return AdaptiveResult(dict(m["ratios"]), self.round_to, self.baseline_accuracy, self.baseline_macs,
                                      m["macs"], m["accuracy"],
                                      [h for h in self.history if h["macs"] >= m["macs"]])
        known = ", ".join(f"{m['budget']:,.0f}" for m in self.milestones) or "none"
        raise DeepslimError(f"no milestone at {budget:,.0f} MACs", hint=f"milestones: {known}")


def coupled_groups(model: nn.Module, example_inputs: torch.Tensor, layers: list[str] | None = None,
                   importance: str = "l2") -> dict[str, list[str]]:
    """Layers whose output channels are removed together (a residual add, a concat), keyed by the first.

    Found by pruning each layer alone on a copy and seeing which layers' outputs shrink with it.

    Example:
        >>> import deepslim, torch
        >>> sorted(coupled_groups(deepslim.create_model("lenet5"), torch.randn(1, 1, 28, 28)))
        ['0', '3', '7']
    """
    names = layers or list(select_layers(model, default=True))
    seen: dict[frozenset, list[str]] = {}
    for name in names:
        trial = copy.deepcopy(model)
        try:
            plan = prune_(trial, ChannelPruning(ratio=0.0, importance=importance, per_layer={name: 0.5}),
                          example_inputs=example_inputs, skip_head=False)
        except DeepslimError:
            continue  # a layer the tracer cannot prune is simply not a candidate
        shrunk = frozenset(n for n, s in plan.layers.items() if s["after"] and s["after"][0] != s["before"][0])
        if name in shrunk:
            seen.setdefault(shrunk, []).append(name)
    return {members[0]: members for members in seen.values()}


def _per_layer(groups: dict[str, list[str]], ratios: dict[str, float]) -> dict[str, float]:
    # One entry per group (its lead) and only non-zero ratios: a 0 would mark the layer
    # "ignored", which would also block the other members of its group.
    return {lead: r for lead, r in ratios.items() if r > 0}


def adaptive_ratios(model: nn.Module, val_data, target_macs: float, example_inputs: torch.Tensor, *,
                    calibration_images: torch.Tensor | None = None, step: float = 0.05,
                    importance: str = "l2", max_ratio: float = 0.9, round_to: int | None = None,
                    layers: list[str] | None = None, milestones: tuple[float, ...] = ()) -> AdaptiveResult:
    """Per-layer ratios whose pruned model has at most ``target_macs`` MACs, chosen by measurement.

    The model is not modified; apply the result with ``prune_adaptive`` or
    ``prune_(model, ChannelPruning(ratio=0, per_layer=result.ratios), ...)``.
    ``step`` is the MAC saving per step as a fraction of the baseline (smaller: more steps,
    more measurements, finer choices). ``round_to`` keeps channel counts multiples of it (ONNX
    Runtime's conv kernels run much slower on odd counts, see BENCHMARKS.md).
    ``calibration_images`` (a few thousand training images) re-estimate BatchNorm statistics
    in every trial; strongly recommended for BN networks.
    ``milestones`` (MAC counts above the target) are met exactly on the way and their state
    kept (``result.at(milestone)``): one walk serves several budgets.

    Example:
        >>> import deepslim, torch
        >>> data = deepslim.load_dataset("synthetic", subset=200)
        >>> model, x = deepslim.create_model("lenet5"), torch.randn(1, 1, 28, 28)
        >>> macs = deepslim.profiling.count_ops(model, (x,)).macs
        >>> r = adaptive_ratios(model, data.val, 0.6 * macs, x, step=0.2)
        >>> r.macs <= 0.6 * macs
        True
    """
    if not 0 < step < 1:
        raise DeepslimError(f"step {step} must lie in (0, 1)", hint="e.g. step=0.05 (5% of the baseline MACs)")
    if not 0 < max_ratio < 1:
        raise DeepslimError(f"max_ratio {max_ratio} must lie in (0, 1)")
    if layers is not None:
        check_names_exist(model, layers)
    model = model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    images, labels = val_data.images.to(device), val_data.labels.to(device)
    probe = prune_(copy.deepcopy(model), ChannelPruning(ratio=0.0), example_inputs=example_inputs, skip_head=False)
    base_macs = probe.macs_before
    if target_macs >= base_macs:
        raise DeepslimError(f"the MAC budget {target_macs:,.0f} is not below the model's {base_macs:,}")
    base_acc = top1_accuracy(model, images, labels)
    groups = coupled_groups(model, example_inputs, layers, importance)
    if not groups:
        raise DeepslimError("no layer of this model can be channel-pruned",
                            hint="check the model has prunable conv/linear layers outside the head")

    def trial(ratios: dict[str, float]) -> tuple[nn.Module, PruningPlan]:
        pruned = copy.deepcopy(model)
        plan = prune_(pruned, ChannelPruning(ratio=0.0, importance=importance, round_to=round_to,
                                             per_layer=_per_layer(groups, ratios)),
                      example_inputs=example_inputs, skip_head=False)
        return pruned, plan

    ratios = {lead: 0.0 for lead in groups}
    slope: dict[str, float] = {}          # MACs saved per unit of ratio, per group (last measured)
    exhausted: set[str] = set()
    macs, acc = base_macs, base_acc
    result = AdaptiveResult({}, round_to, base_acc, base_macs, base_macs, base_acc)
    stops = sorted({float(m) for m in milestones if target_macs < m < base_macs} | {float(target_macs)}, reverse=True)

    def all_layers(lead_ratios: dict[str, float]) -> dict[str, float]:
        return {name: lead_ratios[lead] for lead, members in groups.items() for name in members if lead_ratios[lead] > 0}

    while macs > target_macs:
        next_stop = next(m for m in stops if m < macs)
        want = min(step * base_macs, macs - next_stop)
        best = None
        for lead in groups:
            if lead in exhausted:
                continue
            delta = want / slope[lead] if slope.get(lead) else 0.1
            for _ in range(6):  # widen the proposal until it removes at least a channel and saves enough
                delta = min(delta, max_ratio - ratios[lead])
                proposal = ratios | {lead: round(ratios[lead] + delta, 4)}
                pruned, plan = trial(proposal)
                saving = macs - plan.macs_after
                if saving > 0:
                    slope[lead] = saving / delta
                if (saving >= 0.5 * want and saving > 0) or ratios[lead] + delta >= max_ratio - 1e-9:
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
                best = (score, lead, proposal, plan.macs_after, trial_acc)
        if best is None:
            raise DeepslimError(f"cannot reach {target_macs:,.0f} MACs: every group is at max_ratio {max_ratio} "
                                f"(reached {macs:,})", hint="raise max_ratio or ask for a larger budget")
        _, lead, ratios, new_macs, acc = best
        macs = new_macs
        result.history.append({"group": groups[lead], "ratio": ratios[lead], "macs": macs, "accuracy": acc})
        log(f"adaptive pruning step {len(result.history)}: {lead} -> ratio {ratios[lead]:.3f}, "
            f"{macs / 1e6:.2f}M MACs (target {target_macs / 1e6:.2f}M), {acc:.2f}% validation")
        if ratios[lead] >= max_ratio - 1e-9:
            exhausted.add(lead)
        for m in stops[:-1]:
            if macs <= m and all(r["budget"] != m for r in result.milestones):
                result.milestones.append({"budget": m, "ratios": all_layers(ratios), "macs": macs, "accuracy": acc})
    result.ratios = all_layers(ratios)
    result.macs, result.accuracy = macs, acc
    return result


def prune_adaptive(model: nn.Module, result: AdaptiveResult, example_inputs: torch.Tensor, *,
                   importance: str = "l2") -> PruningPlan:
    """Apply ``adaptive_ratios``' result to ``model`` in place (channels removed for real)."""
    return prune_(model, ChannelPruning(ratio=0.0, importance=importance, round_to=result.round_to,
                                        per_layer=result.ratios),
                  example_inputs=example_inputs, skip_head=False)
