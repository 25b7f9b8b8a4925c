"""The ENAS macro search space (Pham et al. 2018, "macro"), sized for 28x28 inputs on 2 CPU cores.

A stem (3x3 conv, stride 2: 14x14), then ``num_layers`` layers of ``channels`` channels; after each layer
in ``reduce_after`` a 2x2 max pool halves the resolution (14 -> 7 -> 4 by default). Each layer applies one
op to the previous layer's output, from ``OPS``: conv 3x3 / 5x5, depthwise-separable 3x3 / 5x5, max / avg
pool 3x3; and adds the outputs of any earlier layers it chooses (skip connections, pooled to its size).
An ``EnasArch`` is that choice: ``ops[i]`` and ``skips[i]``, a 0/1 per earlier layer.

Example:
    >>> space = EnasMacroSpace()   # or get_space("enas-macro")
    >>> arch = space.sample(0)
    >>> len(arch.ops), [len(s) for s in arch.skips]
    (6, [0, 1, 2, 3, 4, 5])
    >>> space.validate(arch.to_dict()) == arch
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import Config, DeepslimError
from .space import as_rng, register_space

OPS = ("conv3", "conv5", "sep3", "sep5", "max3", "avg3")


@dataclass(frozen=True)
class EnasArch:
    """``ops[i]``: layer i's op (a name in the space's ops); ``skips[i]``: i flags, 1 where layer i adds
    layer j's output. Frozen and hashable; ``to_dict``/``from_dict`` give JSON."""

    ops: tuple[str, ...]
    skips: tuple[tuple[int, ...], ...]

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(str(o) for o in self.ops))
        object.__setattr__(self, "skips", tuple(tuple(int(b) for b in s) for s in self.skips))

    def to_dict(self) -> dict[str, Any]:
        return {"ops": list(self.ops), "skips": [list(s) for s in self.skips]}

    @classmethod
    def from_dict(cls, data: dict) -> "EnasArch":
        if not isinstance(data, dict) or set(data) != {"ops", "skips"}:
            raise DeepslimError("an ENAS arch must be a dict with exactly: ops, skips",
                                hint='e.g. {"ops": ["conv3", "max3"], "skips": [[], [1]]}')
        try:
            return cls(data["ops"], data["skips"])
        except (TypeError, ValueError) as exc:
            raise DeepslimError(f"ENAS arch is malformed: {exc}",
                                hint="ops is a list of op names; skips a list of lists of 0/1") from exc

    def key(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def __str__(self) -> str:
        return " ".join(op + ("+" + "".join(map(str, s)) if any(s) else "") for op, s in zip(self.ops, self.skips))


@dataclass
class EnasMacroSpace(Config):
    """ENAS macro space: ``num_layers`` layers of ``channels`` channels, one op each from ``ops``, skip
    connections from any earlier layer. See the module docstring.

    Example:
        >>> EnasMacroSpace(num_layers=4, reduce_after=(1,)).size()
        82944
    """

    name: str = "enas-macro"
    in_channels: int = 1
    num_classes: int = 10
    channels: int = 32
    num_layers: int = 6
    reduce_after: tuple[int, ...] = (1, 3)
    stem_stride: int = 2
    ops: tuple[str, ...] = OPS
    dropout: float = 0.1

    def __post_init__(self):
        self.reduce_after, self.ops = tuple(self.reduce_after), tuple(self.ops)
        for f in ("in_channels", "num_classes", "channels", "num_layers"):
            self.check_range(f, 1, None, integer=True)
        self.check_range("stem_stride", 1, 2, integer=True)
        self.check_range("dropout", 0.0, 1.0, high_inclusive=False)
        unknown = [o for o in self.ops if o not in OPS]
        if not self.ops or unknown or len(set(self.ops)) != len(self.ops):
            raise DeepslimError(f"EnasMacroSpace.ops = {self.ops!r} is not allowed",
                                hint=f"distinct names among: {', '.join(OPS)}")
        if any(isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < self.num_layers - 1
               for r in self.reduce_after) or len(set(self.reduce_after)) != len(self.reduce_after):
            raise DeepslimError(f"EnasMacroSpace.reduce_after = {self.reduce_after!r} is not allowed",
                                hint=f"distinct layer indices in [0, {self.num_layers - 2}]")

    def options(self) -> dict:
        out = self.to_dict()
        out.pop("type")
        out.pop("name")
        return out

    # -- archs --------------------------------------------------------------------------------------------
    def validate(self, arch: "EnasArch | dict") -> EnasArch:
        """``arch`` as an ``EnasArch`` if it belongs to this space; a ``DeepslimError`` naming what is wrong."""
        arch = EnasArch.from_dict(arch) if isinstance(arch, dict) else arch
        if not isinstance(arch, EnasArch):
            raise DeepslimError(f"expected an EnasArch or a dict, got {type(arch).__name__}",
                                hint=f"the space '{self.name}' takes ENAS archs (ops, skips)")
        if len(arch.ops) != self.num_layers or len(arch.skips) != self.num_layers:
            raise DeepslimError(f"the arch has {len(arch.ops)} ops and {len(arch.skips)} skip lists, the space "
                                f"'{self.name}' has {self.num_layers} layers", hint="one of each per layer")
        for i, (op, skips) in enumerate(zip(arch.ops, arch.skips)):
            if op not in self.ops:
                raise DeepslimError(f"arch.ops[{i}] = '{op}' is not allowed", hint=f"ops: {', '.join(self.ops)}")
            if len(skips) != i or any(b not in (0, 1) for b in skips):
                raise DeepslimError(f"arch.skips[{i}] = {list(skips)} must be {i} flags of 0 or 1",
                                    hint="layer i has one flag per earlier layer")
        return arch

    def sample(self, generator=None) -> EnasArch:
        """A uniformly random arch (each op equally likely, each skip on with probability 1/2)."""
        rng = as_rng(generator)
        ops = [rng.choice(self.ops) for _ in range(self.num_layers)]
        skips = [[rng.index(2) for _ in range(i)] for i in range(self.num_layers)]
        return EnasArch(tuple(ops), tuple(map(tuple, skips)))

    def mutate(self, arch: EnasArch, generator=None, probability: float = 0.1) -> EnasArch:
        """Resample each op and flip each skip flag with ``probability``. Used by evolution."""
        rng = as_rng(generator)
        arch = self.validate(arch)
        ops = [rng.choice(self.ops) if rng.uniform() < probability else op for op in arch.ops]
        skips = [[1 - b if rng.uniform() < probability else b for b in s] for s in arch.skips]
        return EnasArch(tuple(ops), tuple(map(tuple, skips)))

    def crossover(self, a: EnasArch, b: EnasArch, generator=None) -> EnasArch:
        """Each layer's op and skip flags from ``a`` or ``b`` with equal chance."""
        rng = as_rng(generator)
        a, b = self.validate(a), self.validate(b)
        layers = [(x, y) if rng.uniform() < 0.5 else (p, q) for x, y, p, q in zip(a.ops, a.skips, b.ops, b.skips)]
        return EnasArch(tuple(op for op, _ in layers), tuple(s for _, s in layers))

    def size(self) -> int:
        return len(self.ops) ** self.num_layers * 2 ** (self.num_layers * (self.num_layers - 1) // 2)

    # -- for the RL controller -------------------------------------------------------------------------------
    def decisions(self) -> list[tuple[str, int]]:
        """The controller's decisions in order, each ``(kind, number of choices)``: per layer its op, then one
        flag per earlier layer."""
        out = []
        for i in range(self.num_layers):
            out.append(("op", len(self.ops)))
            out += [("skip", 2)] * i
        return out

    def from_decisions(self, indices: list[int]) -> tuple[EnasArch, list[bool]]:
        """The arch the decisions' choice indices make, and which decisions it uses (all of them here)."""
        it = iter(indices)
        ops, skips = [], []
        for i in range(self.num_layers):
            ops.append(self.ops[next(it)])
            skips.append(tuple(next(it) for _ in range(i)))
        return self.validate(EnasArch(tuple(ops), tuple(skips))), [True] * len(indices)

    # -- encoding for predictors ---------------------------------------------------------------------------------
    @property
    def encoding_size(self) -> int:
        return self.num_layers * len(self.ops) + self.num_layers * (self.num_layers - 1) // 2

    def encode(self, arch: EnasArch) -> np.ndarray:
        """One-hot op per layer, then every skip flag."""
        arch = self.validate(arch)
        out = np.zeros(self.encoding_size, dtype=np.float32)
        for i, op in enumerate(arch.ops):
            out[i * len(self.ops) + self.ops.index(op)] = 1
        flags = [b for s in arch.skips for b in s]
        out[self.num_layers * len(self.ops):] = flags
        return out


@register_space("enas-macro", description="ENAS macro space for 28x28 images: 6 layers of 32 channels, one op "
                                          "each of conv/sep 3x3/5x5 or max/avg pool, skip connections")
def enas_macro(**options) -> EnasMacroSpace:
    """The ENAS macro space (``EnasMacroSpace``) with ``options`` overriding its defaults."""
    options.pop("name", None)
    try:
        return EnasMacroSpace(name="enas-macro", **options)
    except TypeError as exc:
        raise DeepslimError(f"enas-macro: {exc}", hint="fields: " + ", ".join(EnasMacroSpace().options())) from exc
