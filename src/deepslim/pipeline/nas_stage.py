"""The recipe stage ``ofa_subnet``: start ``compress`` from a once-for-all supernet by searching it for
the most accurate subnet under a latency, MACs or params limit; later stages (fine-tune, int8) then
apply to that subnet like to any model.

    deepslim compress --model runs/ofa/supernet --data fashion-mnist --recipe recipes/ofa-int8.yaml --out runs/ofa-int8

with a recipe whose first stage is::

    - technique: ofa_subnet
      latency_ms: 0.08                    # predicted by the table, at batch `batch`
      latency_table: runs/ofa/latency.json
      finetune: {epochs: 1, lr: 0.01, distill: true}

Given a supernet, ``compress`` measures as its baseline the supernet's largest subnet (BatchNorm
re-estimated on the calibration images), and distils from it; see ``prepare_supernet_source``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core import Config, DeepslimError, log
from ..train.batchnorm import recalibrate_batchnorm_

STRATEGIES = ("evolution", "random")


@dataclass
class OFASubnetSearch(Config):
    """Search the input supernet for its most accurate subnet under the limits given (at least one).

    Subnets are judged on the validation split after BN re-estimation on ``calibration_size`` training
    images. ``latency_ms`` needs ``latency_table`` (from `deepslim nas latency-table`).

    Example:
        >>> OFASubnetSearch(macs=5e6, budget=100)
        OFASubnetSearch(latency_ms=None, ...)
    """

    latency_ms: float | None = None
    batch: int = 1
    macs: float | None = None
    params: float | None = None
    latency_table: str | None = None
    strategy: str = "evolution"
    budget: int = 200
    population: int = 20
    calibration_size: int = 2000
    seed: int = 0

    def __post_init__(self):
        for name in ("latency_ms", "macs", "params"):
            if getattr(self, name) is not None:
                self.check_range(name, 0.0, None, low_inclusive=False)
        if self.latency_ms is None and self.macs is None and self.params is None:
            raise DeepslimError("ofa_subnet needs a limit", hint="give latency_ms, macs and/or params")
        if self.latency_ms is not None and not self.latency_table:
            raise DeepslimError("ofa_subnet: latency_ms needs latency_table",
                                hint="build one with `deepslim nas latency-table DIR` and give DIR/latency.json")
        self.check_range("batch", 1, None, integer=True)
        self.check_choice("strategy", STRATEGIES)
        self.check_range("budget", 1, None, integer=True)
        self.check_range("population", 2, None, integer=True)
        self.check_range("calibration_size", 1, None, integer=True)
        self.check_range("seed", 0, None, integer=True)


def is_supernet(model: nn.Module) -> bool:
    from ..nas import OFASupernet

    return isinstance(model, OFASupernet)


@torch.no_grad()
def prepare_supernet_source(model: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """The model ``compress`` measures and distils from when given a supernet: its largest subnet, with
    BatchNorm re-estimated on ``calibration`` (a supernet's running statistics mix many subnets)."""
    from ..nas import extract_subnet

    largest = extract_subnet(model, model.space.largest())
    recalibrate_batchnorm_(largest, calibration)
    log("the input is a once-for-all supernet: the baseline is its largest subnet, BN re-estimated on "
        f"{len(calibration):,} training images")
    return largest.eval()


def apply_ofa_subnet(ctx, config: OFASubnetSearch) -> dict:
    """Replace ``ctx.model`` by the searched subnet of ``ctx.source`` (the supernet compress was given)."""
    from ..nas import Constraints, Evaluator, search
    from ..nas.latency_table import LatencyTable

    supernet = ctx.source
    if not is_supernet(supernet):
        raise DeepslimError("ofa_subnet needs a once-for-all supernet as the input model",
                            hint="give compress --model DIR/supernet of a `deepslim nas supernet` folder")
    table = None
    if config.latency_table:
        table = LatencyTable.load(config.latency_table, supernet.space)
        table.predict(supernet.space.smallest(), config.batch)  # refuses a batch size the table lacks, now
    supernet = supernet.cpu().eval()
    calibration = min(config.calibration_size, len(ctx.data.train))
    judge = Evaluator(supernet, ctx.data.train, ctx.data.val, calibration_size=calibration, seed=config.seed,
                      latency=table.latency_fn(config.batch) if table is not None else None)
    constraints = Constraints(max_macs=config.macs, max_params=config.params, max_latency_ms=config.latency_ms)
    options = {"seed": config.seed}
    if config.strategy == "evolution":
        options.update(population=config.population, sample_size=min(5, config.population))
    log(f"  {config.strategy} search of the supernet, budget {config.budget}, {constraints.describe()}")
    result = search(config.strategy, supernet.space, judge, config.budget, constraints, **options)
    if not result.feasible:
        log(f"  warning: {result.message}")
    ctx.model = judge.subnet(result.best_arch).to(ctx.device)
    return {"arch": result.best["arch"], "search": {k: v for k, v in result.to_dict().items() if k != "history"},
            "evaluations": judge.evaluations, "calibration_images": calibration}
