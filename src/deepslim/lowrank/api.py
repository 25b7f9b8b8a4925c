"""``deepslim.factorize_(model, config)``: the one low-rank verb, and the plan it returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..core import Config, DeepslimError, eval_mode, log, set_submodule
from ..core.inputs import check_inputs
from ..export.files import write_json_atomic
from ..profiling.counting import count_ops
from .config import Factorization
from .decompose import factorize_conv_channel, factorize_conv_spatial, factorize_conv_tucker, factorize_linear
from .ranks import (
    Candidate,
    find_candidates,
    predicted_macs,
    ranks_by_sensitivity,
    ranks_for_energy,
    ranks_for_mac_ratio,
)


@dataclass
class RankPlan:
    """What ``factorize_`` did: per layer the method, rank, kept energy and MACs before/after;
    the layers it left alone and why; the model's measured MACs and params before/after."""

    config: Config
    layers: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    macs_before: int = 0
    macs_after: int = 0
    params_before: int = 0
    params_after: int = 0
    sensitivity: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "layers": self.layers, "skipped": self.skipped,
                "macs_before": self.macs_before, "macs_after": self.macs_after,
                "params_before": self.params_before, "params_after": self.params_after,
                "sensitivity": self.sensitivity}

    def save(self, path: str | Path) -> Path:
        """Write ``rank_plan.json`` into the folder ``path``."""
        return write_json_atomic(Path(path) / "rank_plan.json", self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "RankPlan":
        file = Path(path) / "rank_plan.json"
        try:
            data = json.loads(file.read_text())
            return cls(Config.from_dict(data["config"]), data["layers"], data.get("skipped", {}), data["macs_before"],
                       data["macs_after"], data.get("params_before", 0), data.get("params_after", 0),
                       data.get("sensitivity", []))
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise DeepslimError(f"cannot read the rank plan {file}: {exc}") from exc

    def table(self) -> str:
        lines = [f"{'layer':<28}{'method':>9}{'rank':>10}{'energy':>8}{'MACs before':>14}{'after':>12}"]
        for name, row in self.layers.items():
            rank = "x".join(str(r) for r in row["rank"]) if isinstance(row["rank"], list) else str(row["rank"])
            lines.append(f"{name:<28}{row['method']:>9}{rank:>10}{row['energy']:>8.3f}"
                         f"{row['macs_before']:>14,}{row['macs_after']:>12,}")
        for name, reason in self.skipped.items():
            lines.append(f"{name:<28}  left whole: {reason}")
        lines.append(f"model: {self.macs_before:,} -> {self.macs_after:,} MACs "
                     f"({self.macs_after / max(self.macs_before, 1):.3f}), params {self.params_before:,} -> "
                     f"{self.params_after:,}")
        return "\n".join(lines)


def build_factorized(candidate: Candidate, rank, tucker_iterations: int = 10) -> nn.Sequential:
    """The chain of layers replacing ``candidate.layer`` at ``rank``, on the layer's device and dtype."""
    layer = candidate.layer
    if isinstance(layer, nn.Linear):
        chain = factorize_linear(layer, rank)
    elif candidate.method == "spatial":
        chain = factorize_conv_spatial(layer, rank)
    elif candidate.method == "tucker":
        chain = factorize_conv_tucker(layer, rank[0], rank[1], tucker_iterations)
    else:
        chain = factorize_conv_channel(layer, rank)
    return chain.to(device=layer.weight.device, dtype=layer.weight.dtype).train(layer.training)


def _explicit_ranks(candidates: list[Candidate], config: Factorization, skipped: dict) -> dict:
    ranks = {}
    for cand in candidates:
        wanted = config.ranks[cand.name]
        full = cand.full_rank()
        if cand.method == "tucker":
            wanted = tuple(wanted) if isinstance(wanted, (list, tuple)) else (wanted, wanted)
            if len(wanted) != 2 or wanted[0] > full[0] or wanted[1] > full[1]:
                raise DeepslimError(f"rank {list(wanted)} for '{cand.name}' is not within its full Tucker ranks "
                                    f"{list(full)}", hint="give [r_out, r_in] no larger than those")
        else:
            if isinstance(wanted, (list, tuple)):
                raise DeepslimError(f"'{cand.name}' takes one rank with method {cand.method}, got {wanted}")
            if wanted > full:
                raise DeepslimError(f"rank {wanted} for '{cand.name}' exceeds its full rank {full}")
        if cand.saves(wanted):
            ranks[cand.name] = wanted
        else:
            skipped[cand.name] = f"rank {wanted} would not lower its MACs ({cand.macs_at(wanted):,} >= {cand.macs:,})"
    return ranks


def factorize_(model: nn.Module, config: Factorization, example_inputs, *, val_data=None) -> RankPlan:
    """Replace the layers ``config`` selects by low-rank chains, in place; return the rank plan.

    ``example_inputs`` (one batch: a tensor, a tuple of positional inputs or a dict of keyword
    inputs) gives the shapes MACs are computed from; ``val_data`` (a split with
    ``images``/``labels``) is needed only for ``selection="sensitivity"``. The model is left
    untouched when anything fails.

    Example:
        >>> import deepslim, torch
        >>> model = deepslim.create_model("lenet5")
        >>> plan = factorize_(model, Factorization(method="svd", mac_ratio=0.6), torch.randn(1, 1, 28, 28))
        >>> plan.macs_after <= 0.6 * plan.macs_before
        True
    """
    if not isinstance(config, Factorization):
        raise DeepslimError(f"factorize_ expects a Factorization config, got {type(config).__name__}",
                            hint="e.g. Factorization(method='svd', energy=0.9)")
    check_inputs(model, example_inputs)  # before any work, naming forward's parameters
    baseline_macs = _macs(model, example_inputs)
    params_before = sum(p.numel() for p in model.parameters())
    candidates, skipped = find_candidates(model, config, example_inputs)
    if not candidates:
        raise DeepslimError("no layer can be factorized with these settings",
                            hint="select conv (groups=1) or linear layers; see `deepslim profile` for names")
    sensitivity = []
    if config.ranks:
        ranks = _explicit_ranks(candidates, config, skipped)
    elif config.energy is not None:
        ranks = ranks_for_energy(candidates, config.energy)
    elif config.selection == "sensitivity":
        ranks, sensitivity = ranks_by_sensitivity(
            model, candidates, config.mac_ratio * baseline_macs, baseline_macs, val_data,
            lambda cand, rank: build_factorized(cand, rank, config.tucker_iterations), skipped)
    else:
        ranks = ranks_for_mac_ratio(candidates, config.mac_ratio * baseline_macs, baseline_macs, skipped)
    for cand in candidates:
        if cand.name not in ranks and cand.name not in skipped:
            skipped[cand.name] = "no rank that keeps the requested energy lowers its MACs"
    chains = {c.name: build_factorized(c, ranks[c.name], config.tucker_iterations) for c in candidates
              if c.name in ranks}
    for name, chain in chains.items():  # only now touch the model: everything above could fail
        set_submodule(model, name, chain)
    layers = {}
    for cand in candidates:
        if cand.name in ranks:
            rank = ranks[cand.name]
            layers[cand.name] = {"method": cand.method, "rank": list(rank) if isinstance(rank, tuple) else rank,
                                 "full_rank": list(cand.full_rank()) if cand.method == "tucker" else cand.full_rank(),
                                 "energy": cand.energy_at(rank), "macs_before": cand.macs,
                                 "macs_after": cand.macs_at(rank)}
    plan = RankPlan(config, layers, skipped, baseline_macs, _macs(model, example_inputs), params_before,
                    sum(p.numel() for p in model.parameters()), sensitivity)
    if config.mac_ratio is not None and plan.macs_after > config.mac_ratio * baseline_macs:
        # Only when a layer runs more than once per forward (shared weights): shapes come from its first call.
        log(f"warning: measured MACs {plan.macs_after:,} exceed the target; predicted "
            f"{predicted_macs(candidates, ranks, baseline_macs):,} (a layer called several times?)")
    return plan


def _macs(model: nn.Module, example_inputs) -> int:
    with eval_mode(model):
        return count_ops(model, example_inputs).macs
