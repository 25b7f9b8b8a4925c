"""An accuracy predictor: a small MLP from an arch's encoding (``space.encode``) to its accuracy after BN
recalibration, trained on archs the evaluator has judged (as in once-for-all: 3 layers of 400 units).
Once trained it stands in for the evaluator, so a search of thousands of archs takes seconds; the
chosen arch should then be judged for real.

Example:
    >>> from deepslim.nas import get_space
    >>> space = get_space("ofa-mbconv")
    >>> records = [{"arch": a.to_dict(), "accuracy": 80.0 + sum(a.depths)} for a in
    ...            (space.sample(i) for i in range(64))]
    >>> predictor = AccuracyPredictor(space).fit(records, epochs=50)
    >>> judge = predictor.evaluator()          # a stand-in for Evaluator in any strategy
    >>> round(judge(space.largest())["accuracy"]) > round(judge(space.smallest())["accuracy"])
    True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core import DeepslimError
from .latency_quality import kendall_tau
from .space import MBConvSpace


class AccuracyPredictor:
    """``fit(records)`` on dicts with ``arch`` and ``accuracy``; ``predict(archs)``; ``quality(records)``
    on held-out ones (mean absolute error in points, Kendall tau); ``evaluator(extra)`` for strategies."""

    def __init__(self, space: MBConvSpace, hidden: tuple[int, ...] = (400, 400, 400), seed: int = 0):
        self.space = space
        with torch.random.fork_rng(devices=[]):  # seeded initial weights without touching the caller's stream
            torch.manual_seed(seed)
            layers, width = [], space.encoding_size
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            self.net = nn.Sequential(*layers, nn.Linear(width, 1))
        self.mean, self.scale = 0.0, 1.0
        self.trained_on = 0

    def _encode(self, archs) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.space.encode(self.space.validate(a)) for a in archs]))

    def fit(self, records: list[dict], *, epochs: int = 300, lr: float = 1e-3, batch_size: int = 64,
            weight_decay: float = 1e-4) -> "AccuracyPredictor":
        """Train on ``records`` (Adam, ``epochs`` passes over shuffled mini-batches); returns self."""
        if len(records) < 8:
            raise DeepslimError(f"an accuracy predictor needs at least 8 judged archs, got {len(records)}",
                                hint="evaluate more subnets first (the OFA paper uses about 16,000; ~1,000 works)")
        x = self._encode([r["arch"] for r in records])
        y = torch.tensor([float(r["accuracy"]) for r in records])
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        target = (y - self.mean) / self.scale
        optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        generator = torch.Generator().manual_seed(0)
        self.net.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for i in range(0, len(x), batch_size):
                idx = order[i:i + batch_size]
                optimizer.zero_grad()
                nn.functional.mse_loss(self.net(x[idx]).squeeze(1), target[idx]).backward()
                optimizer.step()
        self.net.eval()
        self.trained_on = len(records)
        return self

    @torch.no_grad()
    def predict(self, archs) -> list[float]:
        """Predicted accuracy (%) of each arch (``Arch`` or dict)."""
        if not self.trained_on:
            raise DeepslimError("the accuracy predictor is not trained", hint="call fit(records) first")
        return (self.net(self._encode(list(archs))).squeeze(1) * self.scale + self.mean).tolist()

    def quality(self, records: list[dict]) -> dict:
        """On held-out ``records``: mean absolute error (points), largest error, Kendall tau."""
        predicted = self.predict([r["arch"] for r in records])
        measured = [float(r["accuracy"]) for r in records]
        errors = [abs(p - m) for p, m in zip(predicted, measured)]
        tau = kendall_tau(predicted, measured)
        return {"n": len(records), "mean_abs_error": float(np.mean(errors)), "max_abs_error": float(max(errors)),
                "kendall_tau": tau}

    def evaluator(self, extra=None):
        """``evaluate(arch) -> {"accuracy": predicted, **extra(arch)}`` for the strategies; ``extra`` adds the
        constrained metrics (e.g. ``lambda a: {"latency_ms": table.predict(a)}``)."""
        def evaluate(arch) -> dict:
            return {"accuracy": self.predict([arch])[0], **(extra(arch) if extra else {})}
        return evaluate
