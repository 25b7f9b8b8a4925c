"""Search strategies: regularized (aging) evolution and random search, maximising accuracy under
constraints on MACs, params and latency (any subset).

A strategy only needs a space (to propose archs) and ``evaluate(arch) -> metrics`` (an ``Evaluator`` or
any callable returning an object or dict with ``accuracy`` and whichever of ``macs``, ``params``,
``latency_ms`` the constraints name). When no evaluated arch meets the constraints the result is the
closest one, with ``feasible=False`` and a message saying so (not an exception).

Example:
    >>> from deepslim.nas import get_space
    >>> space = get_space("ofa-mbconv")
    >>> judge = lambda a: {"accuracy": float(sum(a.depths)), "macs": sum(a.depths) * 1e6}
    >>> result = evolution_search(space, judge, budget=30, constraints=Constraints(max_macs=10e6), seed=0)
    >>> result.feasible, result.best["macs"] <= 10e6
    (True, True)
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Callable

from ..core import Config, DeepslimError
from .space import Arch, MBConvSpace, as_rng

_LIMITS = (("max_macs", "macs"), ("max_params", "params"), ("max_latency_ms", "latency_ms"))


@dataclass
class Constraints(Config):
    """Upper limits a chosen arch must meet; ``None`` means no limit.

    Example:
        >>> round(Constraints(max_macs=5e6).violation({"macs": 6e6}), 6)
        0.2
    """

    max_macs: float | None = None
    max_params: float | None = None
    max_latency_ms: float | None = None

    def __post_init__(self):
        for name, _ in _LIMITS:
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, (int, float)) and not math.isfinite(value):
                    raise DeepslimError(f"{name} = {value!r} is not a limit", hint=f"give a finite {name} > 0, or none")
                self.check_range(name, 0.0, None, low_inclusive=False)

    def active(self) -> list[tuple[str, str, float]]:
        return [(name, metric, getattr(self, name)) for name, metric in _LIMITS if getattr(self, name) is not None]

    def violation(self, metrics) -> float:
        """Sum of relative excesses over the limits (0 when every limit is met)."""
        total = 0.0
        for name, metric, limit in self.active():
            value = _get(metrics, metric)
            if value is None:
                raise DeepslimError(f"constraint {name} needs '{metric}', which the evaluator did not report",
                                    hint="give the evaluator a latency callable" if metric == "latency_ms" else None)
            total += max(0.0, float(value) / limit - 1.0)
        return total

    def describe(self) -> str:
        return ", ".join(f"{name}={limit:g}" for name, _, limit in self.active()) or "no constraints"


def _get(metrics, name: str):
    return metrics.get(name) if isinstance(metrics, dict) else getattr(metrics, name, None)


def _as_dict(arch: Arch, metrics) -> dict:
    out = metrics.to_dict() if hasattr(metrics, "to_dict") else dict(metrics)
    out["arch"] = arch.to_dict()
    return out


@dataclass
class SearchResult:
    """``best`` (metrics dict with its ``arch``), every evaluation in order (``history``), whether ``best``
    meets the constraints (``feasible``) and a one-line ``message``."""

    best: dict
    history: list[dict]
    feasible: bool
    message: str
    strategy: str
    constraints: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)  # what a strategy adds (rl: the controller's curve)
    space: object = field(default=None, repr=False, compare=False)

    @property
    def best_arch(self):
        """The best arch as the space's arch type (``Arch`` for ``ofa-mbconv``)."""
        return self.space.validate(self.best["arch"]) if self.space is not None else Arch.from_dict(self.best["arch"])

    def to_dict(self) -> dict:
        return {"strategy": self.strategy, "constraints": self.constraints, "feasible": self.feasible,
                "message": self.message, "best": self.best, "history": self.history, **self.extras}


class _Search:
    """Bookkeeping shared by the strategies: the budget, the history and the fitness order."""

    def __init__(self, space: MBConvSpace, evaluate: Callable, budget: int, constraints: Constraints | None):
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise DeepslimError(f"budget = {budget!r} must be a positive integer (evaluations)")
        self.space, self.evaluate, self.budget = space, evaluate, budget
        self.constraints = constraints or Constraints()
        self.history: list[dict] = []
        self.seen: dict[str, dict] = {}

    @property
    def done(self) -> bool:
        return len(self.history) >= self.budget

    def fitness(self, record: dict) -> tuple:
        """Feasible archs by accuracy, all above infeasible ones, which rank by how little they exceed."""
        excess = record["violation"]
        return (excess == 0.0, -excess, record["accuracy"])

    def propose(self, make: Callable[[], Arch], tries: int = 50) -> Arch:
        """An arch from ``make`` not evaluated before, if one turns up within ``tries``."""
        arch = make()
        for _ in range(tries):
            if arch.key() not in self.seen:
                break
            arch = make()
        return arch

    def judge(self, arch: Arch) -> dict:
        record = _as_dict(arch, self.evaluate(arch))
        record["violation"] = self.constraints.violation(record)
        record["step"] = len(self.history)
        self.history.append(record)
        self.seen[arch.key()] = record
        return record

    def result(self, strategy: str) -> SearchResult:
        best = max(self.history, key=self.fitness)
        feasible = best["violation"] == 0.0
        if feasible:
            message = (f"{strategy}: best of {len(self.history)} evaluations meets {self.constraints.describe()} "
                       f"with accuracy {best['accuracy']:.2f}")
        else:
            over = ", ".join(f"{metric} {best[metric]:g} > {limit:g}" for _, metric, limit in self.constraints.active()
                             if best[metric] > limit)
            message = (f"{strategy}: no evaluated arch meets {self.constraints.describe()}; returning the closest "
                       f"({over})")
        return SearchResult(best, self.history, feasible, message, strategy, self.constraints.to_dict(),
                            space=self.space)


def random_search(space: MBConvSpace, evaluate: Callable, budget: int, constraints: Constraints | None = None, *,
                  seed: int = 0) -> SearchResult:
    """Evaluate ``budget`` distinct uniformly random archs; the control for evolution at equal budget.

    Example:
        >>> from deepslim.nas import get_space
        >>> r = random_search(get_space("ofa-mbconv"), lambda a: {"accuracy": 1.0}, budget=5, seed=1)
        >>> len(r.history)
        5
    """
    rng = as_rng(seed)
    search = _Search(space, evaluate, budget, constraints)
    while not search.done:
        search.judge(search.propose(lambda: space.sample(rng)))
    return search.result("random")


def evolution_search(space: MBConvSpace, evaluate: Callable, budget: int, constraints: Constraints | None = None, *,
                     population: int = 20, sample_size: int = 5, mutation_probability: float = 0.1,
                     crossover_probability: float = 0.0, seed: int = 0) -> SearchResult:
    """Regularized (aging) evolution (Real et al. 2019): start from ``population`` random archs; then
    repeatedly take ``sample_size`` members at random, mutate the fittest (optionally a crossover of the two
    fittest first), evaluate the child, add it and drop the *oldest* member. ``budget`` counts every
    evaluation, the initial population included; the same seed gives the same search.

    Example:
        >>> from deepslim.nas import get_space
        >>> judge = lambda a: {"accuracy": float(sum(a.depths))}
        >>> evolution_search(get_space("ofa-mbconv"), judge, budget=12, population=4,
        ...                  sample_size=2, seed=0).best["accuracy"] >= 8
        True
    """
    if not isinstance(population, int) or population < 2:
        raise DeepslimError(f"population = {population!r} must be an integer >= 2")
    if not isinstance(sample_size, int) or not 1 <= sample_size <= population:
        raise DeepslimError(f"sample_size = {sample_size!r} must be an integer in [1, population={population}]")
    for name, p in (("mutation_probability", mutation_probability), ("crossover_probability", crossover_probability)):
        if not 0.0 <= p <= 1.0:
            raise DeepslimError(f"{name} = {p!r} must be in [0, 1]")
    rng = as_rng(seed)
    search = _Search(space, evaluate, budget, constraints)
    alive: collections.deque[dict] = collections.deque()
    while not search.done and len(alive) < population:
        alive.append(search.judge(search.propose(lambda: space.sample(rng))))
    while not search.done:
        picks = [alive[rng.index(len(alive))] for _ in range(sample_size)]
        picks.sort(key=search.fitness, reverse=True)
        parent = space.validate(picks[0]["arch"])
        other = space.validate(picks[min(1, len(picks) - 1)]["arch"])

        def child(parent=parent, other=other) -> Arch:
            base = space.crossover(parent, other, rng) if rng.uniform() < crossover_probability else parent
            return space.mutate(base, rng, mutation_probability)

        alive.append(search.judge(search.propose(child)))
        alive.popleft()  # aging: the oldest dies, however fit
    return search.result("evolution")


STRATEGIES = {"evolution": evolution_search, "random": random_search}


def search(strategy: str, space: MBConvSpace, evaluate: Callable, budget: int,
           constraints: Constraints | None = None, **options) -> SearchResult:
    """Run the strategy named ``strategy`` (``"evolution"``, ``"random"`` or ``"rl"``)."""
    if strategy not in STRATEGIES:
        raise DeepslimError(f"unknown search strategy '{strategy}'", hint=f"strategies: {', '.join(STRATEGIES)}")
    return STRATEGIES[strategy](space, evaluate, budget, constraints, **options)
