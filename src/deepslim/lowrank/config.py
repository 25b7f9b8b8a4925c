"""``Factorization``: which decomposition, and how its ranks are chosen."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import Config, DeepslimError

METHODS = ("svd", "spatial", "tucker")
SELECTIONS = ("energy", "sensitivity")


@dataclass
class Factorization(Config):
    """Replace conv/linear layers by chains of smaller ones (see ``deepslim.factorize_``).

    ``method``: ``"svd"`` (linear: two linears; conv: k x k with r filters then 1 x 1),
    ``"spatial"`` (k x k -> k x 1 then 1 x k; others fall back to svd) or ``"tucker"``
    (Tucker-2: 1 x 1, k x k core, 1 x 1; linear and 1 x 1 layers fall back to svd).

    Give exactly one of ``energy`` (keep this fraction of each layer's squared singular
    values), ``mac_ratio`` (the whole model's MACs must end at most this fraction of the
    original) or ``ranks`` (layer name -> rank; ``[r_out, r_in]`` for Tucker). With
    ``mac_ratio``, ``selection="energy"`` gives every layer the same kept energy, and
    ``selection="sensitivity"`` picks per-layer ranks greedily by measured accuracy loss
    per MAC saved (needs validation data). ``layers`` restricts the layers (names or
    regexes; default: every conv and linear but the classifier head).
    """

    method: str = "svd"
    energy: float | None = None
    mac_ratio: float | None = None
    ranks: dict = field(default_factory=dict)
    selection: str = "energy"
    layers: list | None = None
    tucker_iterations: int = 10

    def __post_init__(self):
        self.check_choice("method", METHODS)
        self.check_choice("selection", SELECTIONS)
        given = [name for name in ("energy", "mac_ratio") if getattr(self, name) is not None] + \
            (["ranks"] if self.ranks else [])
        if len(given) != 1:
            raise DeepslimError(f"Factorization needs exactly one of energy, mac_ratio or ranks (got {given or 'none'})",
                                hint="e.g. Factorization(method='svd', energy=0.9) or mac_ratio=0.5")
        if self.energy is not None:
            self.check_range("energy", 0.0, 1.0, low_inclusive=False)
        if self.mac_ratio is not None:
            self.check_range("mac_ratio", 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        if not isinstance(self.ranks, dict):
            raise DeepslimError("Factorization.ranks must map layer names to ranks")
        for name, rank in self.ranks.items():
            values = rank if isinstance(rank, (list, tuple)) else [rank]
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise DeepslimError(f"Factorization.ranks['{name}'] = {rank!r} is not a positive integer",
                                    hint="a rank is an integer >= 1 ([r_out, r_in] for Tucker)")
        if self.layers is not None and (not isinstance(self.layers, (list, tuple)) or
                                        not all(isinstance(n, str) for n in self.layers)):
            raise DeepslimError("Factorization.layers must be a list of layer names or regexes")
        self.check_range("tucker_iterations", 0, None, integer=True)
