"""Per-layer sensitivity to channel pruning, and ratios that meet a MAC budget with the least loss.

A sweep prunes one layer (with everything that depends on it) at a time to each ratio,
on a copy of the model, and measures validation accuracy and MACs. Given training images,
each trial's BatchNorm statistics are re-estimated first: without that, the drop measures
how badly the surviving statistics fit (often total collapse) rather than the capacity the
layer lost, which is what a fine-tune cannot bring back. ``ratios_for_budget`` then picks
per-layer ratios greedily on a fine grid interpolated between the scanned ratios: always
the step that loses the least predicted accuracy per MAC saved, until the predicted MACs
meet the budget. ``prune_to_budget`` checks the real MACs of the result and adjusts the
budget it asks for until they fit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..core import DeepslimError, progress
from ..core.greedy import greedy_allocate
from ..export.files import write_atomic
from ..profiling.counting import count_ops
from ..train.batchnorm import recalibrate_batchnorm_
from ..train.evaluate import top1_accuracy
from .api import prune_
from .config import ChannelPruning
from .probing import coupled_groups, short_finetune
from .select import check_names_exist, select_layers


@dataclass
class SensitivityResult:
    baseline_accuracy: float
    baseline_macs: int
    ratios: list[float]
    rows: list[dict] = field(default_factory=list)   # layer, ratio, accuracy, drop, macs (or error)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def layers(self) -> list[str]:
        return list(dict.fromkeys(r["layer"] for r in self.rows))

    def table(self) -> str:
        lines = [f"baseline: {self.baseline_accuracy:.2f}% validation accuracy, {self.baseline_macs / 1e6:.2f}M MACs",
                 "accuracy drop (points) when only this layer is pruned to each ratio:", ""]
        header = f"{'layer':<28}" + "".join(f"{r:>9.2f}" for r in self.ratios)
        lines.append(header)
        for layer in self.layers():
            cells = []
            for ratio in self.ratios:
                row = next((r for r in self.rows if r["layer"] == layer and r["ratio"] == ratio), None)
                cells.append(f"{'n/a':>9}" if row is None or "error" in row else f"{row['drop']:>9.2f}")
            lines.append(f"{layer:<28}" + "".join(cells))
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        for layer in self.layers():
            pts = [(r["ratio"], r["drop"]) for r in self.rows if r["layer"] == layer and "error" not in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=layer)
        ax.set_xlabel("fraction of channels removed (this layer only)")
        ax.set_ylabel("validation accuracy drop (points)")
        ax.set_title("Per-layer pruning sensitivity")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        path = Path(path)
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
        plt.close(fig)
        return path




def sensitivity_scan(model: nn.Module, val_data, example_inputs, *, ratios=(0.25, 0.5, 0.75),
                     importance: str = "l2", layers: list[str] | None = None,
                     calibration_images: torch.Tensor | None = None, train_data=None,
                     finetune_images: int = 0, finetune_lr: float = 0.01) -> SensitivityResult:
    """Validation accuracy and MACs with each layer pruned alone to each ratio.

    ``calibration_images`` (a few thousand training images) re-estimate BatchNorm statistics
    in every trial before it is evaluated; strongly recommended for BN networks.
    ``finetune_images`` > 0 lets every trial recover on that many images of ``train_data``
    (the same images for every trial) before it is judged, and the drops are taken against the
    unpruned model given the same fine-tune: the scan then measures the capacity a layer's
    channels carry rather than the damage a fine-tune repairs at once. Layers whose channels
    are removed together (a residual add) are pruned once and share their rows.

    Example:
        >>> import deepslim, torch
        >>> data = deepslim.load_dataset("synthetic", subset=200)
        >>> r = sensitivity_scan(deepslim.create_model("lenet5"), data.val, torch.randn(1, 1, 28, 28),
        ...                      ratios=(0.5,))
        >>> sorted(r.layers())
        ['0', '3', '7']
    """
    if finetune_images and train_data is None:
        raise DeepslimError("finetune_images needs train_data", hint="pass train_data=data.train")
    model = model.eval()
    if layers is not None:
        check_names_exist(model, layers)
    names = layers or list(select_layers(model, default=True))
    images, labels = val_data.images, val_data.labels
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    images, labels = images.to(device), labels.to(device)
    base_acc = top1_accuracy(model, images, labels)
    base_macs = count_ops(model, example_inputs).macs

    def recover(trial: nn.Module) -> None:
        if finetune_images:
            short_finetune(trial, train_data, finetune_images, lr=finetune_lr)

    reference = base_acc
    if finetune_images:  # the control: what the same fine-tune does to the unpruned model
        control = copy.deepcopy(model)
        recover(control)
        reference = top1_accuracy(control, images, labels)
    result = SensitivityResult(reference, base_macs, [float(r) for r in ratios])
    lead_of = {member: lead for lead, members in coupled_groups(model, example_inputs, names, importance).items()
               for member in members}
    scanned: dict[str, list[dict]] = {}
    for name in progress(names, desc="sensitivity"):
        lead = lead_of.get(name, name)
        if lead in scanned:  # pruned together with a layer already scanned: same trials
            result.rows += [{**row, "layer": name} for row in scanned[lead]]
            continue
        rows = scanned[lead] = []
        for ratio in ratios:
            trial = copy.deepcopy(model)
            try:
                plan = prune_(trial, ChannelPruning(ratio=0.0, importance=importance, per_layer={name: ratio}),
                              example_inputs=example_inputs, skip_head=False)
            except DeepslimError as exc:
                rows.append({"layer": name, "ratio": float(ratio), "error": exc.message})
                continue
            if not plan.layers:
                rows.append({"layer": name, "ratio": float(ratio), "error": "nothing could be pruned"})
                continue
            if calibration_images is not None:
                recalibrate_batchnorm_(trial, calibration_images)
            recover(trial)
            acc = top1_accuracy(trial.eval(), images, labels)
            rows.append({"layer": name, "ratio": float(ratio), "accuracy": acc, "drop": reference - acc,
                         "macs": plan.macs_after})
        result.rows += rows
    return result


def _fine_steps(options: list[tuple[float, float, int]], baseline_macs: int,
                granularity: float) -> list[tuple[float, float, int]]:
    """Scanned (ratio, drop, macs) points resampled every ``granularity`` by linear interpolation.

    The curve starts at (0, 0, baseline) and its drop is made non-decreasing: a layer that
    looked better at 0.5 than at 0.25 is validation noise, not a reason to prune more.
    """
    points = [(0.0, 0.0, float(baseline_macs))] + [(r, d, float(m)) for r, d, m in sorted(options)]
    running = 0.0
    points = [(r, (running := max(running, d)), m) for r, d, m in points]
    steps = []
    grid = [round(granularity * i, 6) for i in range(1, int(points[-1][0] / granularity + 1e-9) + 1)]
    for ratio in sorted(set(grid) | {r for r, _, _ in points[1:]}):
        for (r0, d0, m0), (r1, d1, m1) in zip(points, points[1:]):
            if r0 <= ratio <= r1:
                t = (ratio - r0) / (r1 - r0) if r1 > r0 else 1.0
                steps.append((ratio, d0 + t * (d1 - d0), round(m0 + t * (m1 - m0))))
                break
    return steps


def ratios_for_budget(result: SensitivityResult, target_macs: float, *, granularity: float = 0.05) -> dict[str, float]:
    """Greedy per-layer ratios whose predicted MACs meet ``target_macs`` with least predicted loss.

    Ratios move in steps of ``granularity`` between the scanned ones (interpolated), so the
    budget can be met closely even from a coarse scan. Savings and losses of layers are
    assumed to add up (they do not exactly: pruning both sides of a conv saves more), which
    ``prune_to_budget`` corrects by measuring.
    """
    scanned: dict[str, list[tuple[float, float, int]]] = {}
    for r in result.rows:
        if "error" not in r:
            scanned.setdefault(r["layer"], []).append((r["ratio"], r["drop"], r["macs"]))
    # Layers coupled in one dependency group (a residual add, a concat) shrink together and give
    # identical MACs at every ratio; count such a group once and give all its layers one ratio.
    units: dict[tuple, list[str]] = {}
    for layer, options in scanned.items():
        options.sort()
        units.setdefault(tuple((ratio, macs) for ratio, _, macs in options), []).append(layer)
    members = {names[0]: names for names in units.values()}
    steps = {lead: _fine_steps([(ratio, max(scanned[n][i][1] for n in names), scanned[lead][i][2])
                                for i, (ratio, _, _) in enumerate(scanned[lead])],
                               result.baseline_macs, granularity)
             for lead, names in members.items()}
    chosen = greedy_allocate(steps, result.baseline_macs, target_macs)
    return {name: steps[lead][i][0] for lead, i in chosen.items() for name in members[lead]}


def prune_to_budget(model: nn.Module, result: SensitivityResult, target_macs: float, example_inputs,
                    *, importance: str = "l2", iterations: int = 12,
                    granularity: float = 0.05) -> tuple[dict[str, float], "object"]:
    """Prune ``model`` in place with sensitivity-guided ratios whose *measured* MACs are <= target.

    Returns the per-layer ratios used and the pruning plan.
    """
    if target_macs >= result.baseline_macs:
        raise DeepslimError(f"the MAC budget {target_macs:,.0f} is not below the model's {result.baseline_macs:,}")

    def measured(ask: float) -> tuple[dict[str, float], int]:
        ratios = ratios_for_budget(result, ask, granularity=granularity)
        trial = copy.deepcopy(model)
        plan = prune_(trial, ChannelPruning(ratio=0.0, importance=importance, per_layer=ratios),
                      example_inputs=example_inputs, skip_head=False)
        return ratios, plan.macs_after

    # Bisect the budget handed to the greedy allocator until the measured MACs fit just under the target.
    low, high, ask, best = 0.0, float(result.baseline_macs), float(target_macs), None
    for _ in range(iterations):
        ratios, macs = measured(ask)
        if macs <= target_macs:
            if best is None or macs > best[1]:
                best = (ratios, macs)
            low = ask
        else:
            high = ask
        if best is not None and target_macs - best[1] < 0.01 * target_macs:
            break
        ask = (low + high) / 2
    if best is None:
        raise DeepslimError(f"no ratios from the sensitivity scan reach {target_macs:,.0f} MACs",
                            hint="scan higher ratios (e.g. --ratios 0.25,0.5,0.75,0.9)")
    plan = prune_(model, ChannelPruning(ratio=0.0, importance=importance, per_layer=best[0]),
                  example_inputs=example_inputs, skip_head=False)
    return best[0], plan
