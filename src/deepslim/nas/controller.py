"""Strategy ``rl``: an LSTM controller trained with REINFORCE proposes archs (Zoph & Le 2017; the
controller and its settings as in ENAS, Pham et al. 2018), the third strategy beside evolution and random.

The controller emits one decision per step, as the space lists them (``space.decisions()``): for
``ofa-mbconv`` each stage's depth, then each block slot's kernel and expand ratio (slots the depth skips
are sampled too: they count in the log-probability, as they shape later decisions, not in the entropy
bonus); for ``enas-macro`` each layer's op and skip flags. The reward of
an arch is ``accuracy / 100 - penalty_weight * violation`` (the constraints' relative excess, so an arch
10% over a latency limit loses 0.1 x penalty_weight), plus ``entropy_weight`` x the sample's entropy; the
advantage is taken against an exponential moving-average baseline. Logits are ``tanh_constant *
tanh(logits / temperature)``.

Only new archs spend the budget; an arch sampled again reuses its recorded metrics (the controller
still learns from it). A controller that keeps proposing known archs stops after ``max_steps_factor``
x budget samples.

Example:
    >>> from deepslim.nas import get_space
    >>> judge = lambda a: {"accuracy": 10.0 * sum(a.depths)}
    >>> r = rl_search(get_space("ofa-mbconv"), judge, budget=8, seed=0)
    >>> r.strategy, len(r.history), len(r.extras["controller"]) >= 8
    ('rl', 8, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..core import Config, DeepslimError
from .space import MBConvSpace
from .strategies import STRATEGIES, Constraints, SearchResult, _Search


@dataclass
class RLConfig(Config):
    """Controller and REINFORCE settings; defaults from the ENAS paper (LSTM of 100 units, Adam at 3.5e-4,
    weights uniform in +-0.1, temperature 5, tanh constant 2.5, entropy weight 1e-4, baseline decay 0.99).

    Example:
        >>> RLConfig(lr=1e-3).samples_per_update
        1
    """

    hidden_size: int = 100
    lr: float = 3.5e-4
    init_range: float = 0.1
    temperature: float | None = 5.0
    tanh_constant: float | None = 2.5
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99
    samples_per_update: int = 1
    penalty_weight: float = 1.0
    max_steps_factor: int = 20

    def __post_init__(self):
        self.check_range("hidden_size", 1, None, integer=True)
        self.check_range("lr", 0.0, None, low_inclusive=False)
        self.check_range("init_range", 0.0, None)
        for name in ("temperature", "tanh_constant"):
            if getattr(self, name) is not None:
                self.check_range(name, 0.0, None, low_inclusive=False)
        self.check_range("entropy_weight", 0.0, None)
        self.check_range("baseline_decay", 0.0, 1.0, high_inclusive=False)
        self.check_range("samples_per_update", 1, None, integer=True)
        self.check_range("penalty_weight", 0.0, None)
        self.check_range("max_steps_factor", 1, None, integer=True)


class Controller(nn.Module):
    """An LSTM cell that reads its previous decision and emits the next one's logits, over the decisions the
    space lists (``space.decisions()``: one linear head and one embedding table per kind of decision)."""

    def __init__(self, space, config: RLConfig):
        super().__init__()
        self.space, self.config = space, config
        self.decisions = space.decisions()
        kinds = dict(self.decisions)
        h = config.hidden_size
        self.start = nn.Parameter(torch.zeros(1, h))
        self.cell = nn.LSTMCell(h, h)
        self.heads = nn.ModuleDict({k: nn.Linear(h, n) for k, n in kinds.items()})
        self.embed = nn.ModuleDict({k: nn.Embedding(n, h) for k, n in kinds.items()})

    def init_weights_(self, generator: torch.Generator) -> None:
        for p in self.parameters():
            with torch.no_grad():
                p.uniform_(-self.config.init_range, self.config.init_range, generator=generator)

    def _logits(self, kind: str, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.heads[kind](hidden)
        if self.config.temperature is not None:
            logits = logits / self.config.temperature
        if self.config.tanh_constant is not None:
            logits = self.config.tanh_constant * torch.tanh(logits)
        return logits

    def sample(self, generator: torch.Generator):
        """An arch, the summed log-probability of every decision sampled, and the used decisions' entropy."""
        x, state = self.start, None
        indices, log_probs, entropies = [], [], []
        for kind, _ in self.decisions:
            state = self.cell(x, state)
            dist = torch.distributions.Categorical(logits=self._logits(kind, state[0])[0])
            index = int(torch.multinomial(dist.probs.detach(), 1, generator=generator))
            indices.append(index)
            log_probs.append(dist.log_prob(torch.tensor(index)))
            entropies.append(dist.entropy())
            x = self.embed[kind](torch.tensor([index]))
        arch, used = self.space.from_decisions(indices)
        # every decision's log-probability: unused ones still shape the used ones through the LSTM state, so
        # leaving them out would bias the gradient; the entropy bonus counts only the decisions the arch uses
        log_prob = torch.stack(log_probs).sum()
        entropy = sum((e for e, u in zip(entropies, used) if u), torch.zeros(()))
        return arch, log_prob, entropy


class Reinforce:
    """A controller and its REINFORCE bookkeeping: ``sample`` an arch, then ``reward`` it; every
    ``samples_per_update`` rewards make one Adam step on ``-(reward - baseline) * log_prob``. The baseline is
    the exponential moving average of rewards (updated before the advantage is taken, as ENAS does), and
    ``entropy_weight`` x the sample's entropy is added to each reward. ``state_dict`` covers all of it.
    """

    def __init__(self, space, config: RLConfig, generator: torch.Generator):
        self.config = config
        self.controller = Controller(space, config)
        self.controller.init_weights_(generator)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=config.lr)
        self.baseline: float | None = None
        self.pending: list[torch.Tensor] = []

    def sample(self, generator: torch.Generator):
        """``(arch, log_prob, entropy)`` from the controller."""
        return self.controller.sample(generator)

    def reward(self, log_prob: torch.Tensor, entropy: torch.Tensor, value: float) -> dict:
        """Learn from one sample's reward ``value``; returns the row for curves."""
        entropy_value = float(entropy.detach())
        reward = value + self.config.entropy_weight * entropy_value
        decay = self.config.baseline_decay
        self.baseline = reward if self.baseline is None else self.baseline - (1.0 - decay) * (self.baseline - reward)
        self.pending.append(-(reward - self.baseline) * log_prob)
        if len(self.pending) == self.config.samples_per_update:
            self.optimizer.zero_grad()
            torch.stack(self.pending).mean().backward()
            self.optimizer.step()
            self.pending = []
        return {"reward": reward, "baseline": self.baseline, "entropy": entropy_value}

    def state_dict(self) -> dict:
        if self.pending:
            raise DeepslimError("the controller has rewards not yet learned from", hint="save after a full update")
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]


def rl_search(space: MBConvSpace, evaluate: Callable, budget: int, constraints: Constraints | None = None, *,
              config: RLConfig | None = None, seed: int = 0) -> SearchResult:
    """REINFORCE over ``budget`` distinct evaluations; ``result.extras["controller"]`` holds one row per
    controller sample (reward, baseline, entropy, whether it was a new arch), for curves.
    """
    config = config or RLConfig()
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < config.samples_per_update:
        raise DeepslimError(f"budget = {budget!r} is too small for one controller step "
                            f"(samples_per_update = {config.samples_per_update})",
                            hint=f"give a budget of at least {config.samples_per_update}")
    generator = torch.Generator().manual_seed(seed)
    agent = Reinforce(space, config, generator)
    search = _Search(space, evaluate, budget, constraints)
    rows, steps = [], 0
    while not search.done and steps < config.max_steps_factor * budget:
        steps += 1
        arch, log_prob, entropy = agent.sample(generator)
        seen = search.seen.get(arch.key())
        record = seen if seen is not None else search.judge(arch)
        row = agent.reward(log_prob, entropy,
                           record["accuracy"] / 100.0 - config.penalty_weight * record["violation"])
        rows.append({"step": steps, **row, "accuracy": record["accuracy"], "violation": record["violation"],
                     "new": seen is None})
    result = search.result("rl")
    if steps >= config.max_steps_factor * budget and not search.done:
        result.message += (f" (the controller stopped after {steps} samples with {len(search.history)} distinct "
                           "archs: it keeps proposing known ones)")
    result.extras["controller"] = rows
    return result


STRATEGIES["rl"] = rl_search
