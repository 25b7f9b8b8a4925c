"""Pruning configs: one dataclass per method, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import Config, DeepslimError

SCOPES = ("layer", "global")
IMPORTANCES = ("l1", "l2", "bn_scale", "taylor", "fpgm", "random")


@dataclass
class MagnitudePruning(Config):
    """Zero the smallest-magnitude weights: ``sparsity`` of each layer (``scope="layer"``)
    or of all selected layers together (``scope="global"``)."""

    sparsity: float = 0.5
    scope: str = "layer"

    def __post_init__(self):
        self.check_range("sparsity", 0.0, 1.0, high_inclusive=False)
        self.check_choice("scope", SCOPES)


@dataclass
class RandomPruning(Config):
    """Zero a random ``sparsity`` of the weights (the control for magnitude pruning)."""

    sparsity: float = 0.5
    scope: str = "layer"
    seed: int = 0

    def __post_init__(self):
        self.check_range("sparsity", 0.0, 1.0, high_inclusive=False)
        self.check_choice("scope", SCOPES)


@dataclass
class NMSparsity(Config):
    """Keep the ``n`` largest of every ``m`` consecutive weights along the input dimension."""

    n: int = 2
    m: int = 4

    def __post_init__(self):
        self.check_range("m", 1, None, integer=True)
        self.check_range("n", 1, self.m, integer=True)


@dataclass
class ChannelPruning(Config):
    """Physically remove ``ratio`` of the channels (filters, neurons, heads' dims) and every
    slice that depends on them, leaving an ordinary dense model.

    ``per_layer`` maps module names to their own ratio (``0`` keeps a layer whole).
    """

    ratio: float = 0.5
    importance: str = "l2"
    global_ranking: bool = False
    round_to: int | None = None
    per_layer: dict = field(default_factory=dict)

    def __post_init__(self):
        self.check_range("ratio", 0.0, 1.0, high_inclusive=False)
        self.check_choice("importance", IMPORTANCES)
        if self.round_to is not None:
            self.check_range("round_to", 1, None, integer=True)
        if not isinstance(self.per_layer, dict):
            raise DeepslimError("ChannelPruning.per_layer must map layer names to ratios")
        for name, ratio in self.per_layer.items():
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio < 1.0:
                raise DeepslimError(f"ChannelPruning.per_layer['{name}'] = {ratio!r} is out of range",
                                    hint="allowed: [0.0, 1.0)")


UNSTRUCTURED = (MagnitudePruning, RandomPruning, NMSparsity)
