"""Mixed precision: a weight bit-width per layer (8/4/2) that meets a size budget with least loss.

A sweep quantizes one layer's weights at a time to each candidate bit-width (the rest in
float) and measures validation accuracy. A greedy allocator then starts from the widest
width everywhere and repeatedly narrows the layer whose next step loses the least accuracy
per byte saved, until the weights fit ``budget_bytes``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

from ..core import DeepslimError, progress, set_submodule
from ..prune.select import PRUNABLE
from ..train.evaluate import top1_accuracy
from .modules import QuantLayer


def weight_bits_model(model: nn.Module, bits: dict[str, int]) -> nn.Module:
    """A copy with the named layers' weights fake-quantized (per channel, symmetric) at the given widths."""
    model = copy.deepcopy(model).eval()
    modules = dict(model.named_modules())
    for name, b in bits.items():
        set_submodule(model, name, QuantLayer.wrap(modules[name], weight_bits=b))
    return model


@dataclass
class MixedPrecisionResult:
    baseline_accuracy: float
    bits: list[int]
    params: dict[str, int]
    drops: dict[str, dict[int, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"baseline_accuracy": self.baseline_accuracy, "bits": self.bits, "params": self.params,
                "drops": {k: {str(b): d for b, d in v.items()} for k, v in self.drops.items()}}


def bit_sensitivity(model: nn.Module, val_data, bits=(8, 4, 2), layers: list[str] | None = None) -> MixedPrecisionResult:
    """Validation accuracy drop with each layer's weights alone at each bit-width."""
    model = model.eval()
    names = layers or [n for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
    modules = dict(model.named_modules())
    images, labels = val_data.images, val_data.labels
    result = MixedPrecisionResult(top1_accuracy(model, images, labels), sorted(bits, reverse=True),
                                  {n: modules[n].weight.numel() for n in names})
    for name in progress(names, desc="bit sensitivity"):
        result.drops[name] = {b: result.baseline_accuracy - top1_accuracy(weight_bits_model(model, {name: b}), images, labels)
                              for b in result.bits}
    return result


def allocate_bits(result: MixedPrecisionResult, budget_bytes: float) -> dict[str, int]:
    """Greedy per-layer widths whose weight bytes fit ``budget_bytes`` with least predicted drop.

    Example:
        >>> r = MixedPrecisionResult(90.0, [8, 4, 2], {"a": 1000, "b": 1000}, {"a": {8: 0, 4: 0.1, 2: 5},
        ...                          "b": {8: 0, 4: 2.0, 2: 9}})
        >>> allocate_bits(r, 1500)   # 8 bits everywhere is 2000 bytes; narrowing "a" costs least
        {'a': 4, 'b': 8}
    """
    chosen = {n: 0 for n in result.drops}  # index into result.bits
    size = sum(result.params[n] * result.bits[0] / 8 for n in chosen)
    while size > budget_bytes:
        best, best_score = None, None
        for name, i in chosen.items():
            if i + 1 >= len(result.bits):
                continue
            saving = result.params[name] * (result.bits[i] - result.bits[i + 1]) / 8
            cost = max(result.drops[name][result.bits[i + 1]] - result.drops[name][result.bits[i]], 0.0)
            score = cost / saving
            if best_score is None or score < best_score:
                best, best_score = name, score
        if best is None:
            narrowest = sum(result.params[n] * result.bits[-1] / 8 for n in chosen)
            raise DeepslimError(f"the budget of {budget_bytes:,.0f} bytes is below {narrowest:,.0f}, the size with every "
                                f"layer at {result.bits[-1]} bits", hint="raise the budget or allow fewer bits")
        size -= result.params[best] * (result.bits[chosen[best]] - result.bits[chosen[best] + 1]) / 8
        chosen[best] += 1
    return {n: result.bits[i] for n, i in chosen.items()}
