"""Search spaces: what may vary in an elastic network, and the ``Arch`` that picks one point of it.

A space is a validated ``Config`` (so it has a type tag and round-trips through dicts); an ``Arch``
is a JSON-friendly choice of depth per stage and kernel size / expand ratio per active block.
Spaces are registered by name (``"ofa-mbconv"``) so a supernet folder can say which space it is.

Example:
    >>> space = get_space("ofa-mbconv")
    >>> arch = space.sample(0)
    >>> space.validate(arch) is arch
    True
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core import Config, DeepslimError, Registry

SPACES: Registry = Registry("search space")
register_space = SPACES.register


def list_spaces() -> list[str]:
    """Names of every registered search space.

    Example:
        >>> "ofa-mbconv" in list_spaces()
        True
    """
    return SPACES.names()


def get_space(name: str, **options) -> "MBConvSpace":
    """The registered space ``name`` with ``options`` overriding its defaults.

    Example:
        >>> get_space("ofa-mbconv", widths=(8, 8, 16, 16)).widths
        (8, 8, 16, 16)
    """
    return SPACES.get(name)(**options)


# ---------------------------------------------------------------------------------------------------------
# Random numbers: strategies pass a seed, a torch.Generator or a numpy Generator; all give the same API here.
class _Rng:
    def __init__(self, generator):
        if generator is None:  # torch's global generator, so torch.manual_seed governs it
            self._r, self.kind = None, "torch"
        elif isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
            self._r, self.kind = random.Random(int(generator)), "python"
        elif isinstance(generator, random.Random):
            self._r, self.kind = generator, "python"
        elif isinstance(generator, torch.Generator):
            self._r, self.kind = generator, "torch"
        elif isinstance(generator, np.random.Generator):
            self._r, self.kind = generator, "numpy"
        else:
            raise DeepslimError(f"cannot draw random numbers from {type(generator).__name__}",
                                hint="pass a seed (int), a torch.Generator or a numpy.random.Generator")

    def index(self, n: int) -> int:
        if self.kind == "torch":
            return int(torch.randint(n, (1,), generator=self._r).item())
        if self.kind == "numpy":
            return int(self._r.integers(n))
        return self._r.randrange(n)

    def choice(self, options):
        return options[self.index(len(options))]

    def uniform(self) -> float:
        if self.kind == "torch":
            return float(torch.rand(1, generator=self._r).item())
        if self.kind == "numpy":
            return float(self._r.random())
        return self._r.random()


def as_rng(generator) -> _Rng:
    """A uniform wrapper over a seed, ``torch.Generator``, ``numpy.random.Generator``, ``random.Random`` or
    ``None`` (torch's global generator)."""
    return generator if isinstance(generator, _Rng) else _Rng(generator)


# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arch:
    """One subnet: ``depths[s]`` blocks in stage ``s``; ``kernels[s][b]`` / ``expands[s][b]`` for each active block.

    Frozen and hashable (a cache key); ``to_dict``/``from_dict`` give JSON.

    Example:
        >>> a = Arch(depths=(2,), kernels=((3, 5),), expands=((3, 6),))
        >>> Arch.from_dict(json.loads(json.dumps(a.to_dict()))) == a
        True
    """

    depths: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]
    expands: tuple[tuple[int, ...], ...]

    def __post_init__(self):
        # accept lists (from JSON) but store tuples so the arch hashes
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "kernels", tuple(tuple(int(k) for k in s) for s in self.kernels))
        object.__setattr__(self, "expands", tuple(tuple(int(e) for e in s) for s in self.expands))

    def to_dict(self) -> dict[str, Any]:
        return {"depths": list(self.depths), "kernels": [list(s) for s in self.kernels],
                "expands": [list(s) for s in self.expands]}

    @classmethod
    def from_dict(cls, data: dict) -> "Arch":
        if not isinstance(data, dict):
            raise DeepslimError(f"an arch must be a dict with depths, kernels, expands; got {type(data).__name__}")
        missing = [k for k in ("depths", "kernels", "expands") if k not in data]
        extra = [k for k in data if k not in ("depths", "kernels", "expands")]
        if missing or extra:
            raise DeepslimError(f"arch {'lacks ' + ', '.join(missing) if missing else 'has unknown fields ' + ', '.join(extra)}",
                                hint="an arch has exactly: depths, kernels, expands")
        try:
            return cls(data["depths"], data["kernels"], data["expands"])
        except (TypeError, ValueError) as exc:
            raise DeepslimError(f"arch is malformed: {exc}",
                                hint="depths is a list of ints; kernels and expands are lists of lists of ints") from exc

    def key(self) -> str:
        """Canonical JSON: equal archs give equal keys."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def __str__(self) -> str:
        stages = [" ".join(f"k{k}e{e}" for k, e in zip(ks, es)) for ks, es in zip(self.kernels, self.expands)]
        return " | ".join(stages)


# ---------------------------------------------------------------------------------------------------------
@dataclass
class MBConvSpace(Config):
    """An elastic MBConv space for small images: a fixed stem, ``len(widths)`` elastic stages, a fixed head.

    Per stage the depth is one of ``depth_choices``; per block the depthwise kernel is one of
    ``kernel_choices`` and the expand ratio (hidden channels = input channels x ratio) one of
    ``expand_choices``. The first block of stage ``s`` has stride ``strides[s]``; the others stride 1
    with a residual connection. Defaults suit 28x28 single-channel inputs (Fashion-MNIST): the stem halves the
    resolution and the stages run at 14, 7, 7 and 4 pixels, sized so the largest net trains one Fashion-MNIST
    epoch in about 3 minutes on 2 CPU cores (docs/nas.md).

    Example:
        >>> space = MBConvSpace(widths=(8, 8, 16, 16), head_channels=32)
        >>> space.largest().depths
        (4, 4, 4, 4)
    """

    name: str = "ofa-mbconv"
    in_channels: int = 1
    num_classes: int = 10
    stem_channels: int = 16
    stem_stride: int = 2
    widths: tuple[int, ...] = (16, 24, 32, 48)
    strides: tuple[int, ...] = (1, 2, 1, 2)
    depth_choices: tuple[int, ...] = (2, 3, 4)
    kernel_choices: tuple[int, ...] = (3, 5, 7)
    expand_choices: tuple[int, ...] = (3, 4, 6)
    head_channels: int = 192
    dropout: float = 0.1

    def __post_init__(self):
        for f in ("widths", "strides", "depth_choices", "kernel_choices", "expand_choices"):
            setattr(self, f, tuple(getattr(self, f)))
        for f in ("in_channels", "num_classes", "stem_channels", "head_channels"):
            self.check_range(f, 1, None, integer=True)
        self.check_range("dropout", 0.0, 1.0, high_inclusive=False)
        if not self.widths:
            raise DeepslimError("MBConvSpace.widths is empty", hint="give one width per stage, e.g. (24, 32, 64, 96)")
        if len(self.strides) != len(self.widths):
            raise DeepslimError(f"MBConvSpace.strides has {len(self.strides)} entries but widths has {len(self.widths)}",
                                hint="give one stride per stage")
        self._check_ints("widths", 1, distinct=False)
        self._check_ints("strides", 1, 2, distinct=False)
        self.check_range("stem_stride", 1, 2, integer=True)
        self._check_ints("depth_choices", 1)
        self._check_ints("expand_choices", 1)
        self._check_ints("kernel_choices", 1)
        if any(k % 2 == 0 for k in self.kernel_choices):
            raise DeepslimError(f"MBConvSpace.kernel_choices = {self.kernel_choices} has an even kernel",
                                hint="kernel sizes must be odd (3, 5, 7)")

    def _check_ints(self, field: str, low: int, high: int | None = None, distinct: bool = True) -> None:
        values = getattr(self, field)
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < low
               or (high is not None and v > high)]
        if not values or bad or (distinct and len(set(values)) != len(values)):
            allowed = f"integers >= {low}" + (f" and <= {high}" if high is not None else "")
            raise DeepslimError(f"MBConvSpace.{field} = {values!r} is not allowed",
                                hint=f"a non-empty list of {'distinct ' if distinct else ''}{allowed}")

    # -- shape of the space --------------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.widths)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    def options(self) -> dict:
        """The fields as a JSON-friendly dict (no type tag): what ``get_space(name, **options)`` takes."""
        out = self.to_dict()
        out.pop("type")
        out.pop("name")
        return out

    # -- archs ------------------------------------------------------------------------------------------
    def validate(self, arch: "Arch | dict") -> Arch:
        """``arch`` as an ``Arch`` if it belongs to this space; a ``DeepslimError`` naming the bad field otherwise."""
        arch = Arch.from_dict(arch) if isinstance(arch, dict) else arch
        if not isinstance(arch, Arch):
            raise DeepslimError(f"expected an Arch or a dict, got {type(arch).__name__}")
        n = self.num_stages
        for field in ("depths", "kernels", "expands"):
            if len(getattr(arch, field)) != n:
                raise DeepslimError(f"arch.{field} has {len(getattr(arch, field))} stages, space '{self.name}' has {n}",
                                    hint=f"give one entry per stage ({n})")
        for s, d in enumerate(arch.depths):
            if d not in self.depth_choices:
                raise DeepslimError(f"arch.depths[{s}] = {d} is not allowed",
                                    hint=f"allowed depths: {', '.join(map(str, self.depth_choices))}")
        for field, allowed in (("kernels", self.kernel_choices), ("expands", self.expand_choices)):
            for s, values in enumerate(getattr(arch, field)):
                if len(values) != arch.depths[s]:
                    raise DeepslimError(f"arch.{field}[{s}] has {len(values)} blocks but arch.depths[{s}] = "
                                        f"{arch.depths[s]}", hint="give one value per active block")
                for b, v in enumerate(values):
                    if v not in allowed:
                        raise DeepslimError(f"arch.{field}[{s}][{b}] = {v} is not allowed",
                                            hint=f"allowed: {', '.join(map(str, allowed))}")
        return arch

    def _from_slots(self, depths, kernel_slots, expand_slots) -> Arch:
        return Arch(tuple(depths), tuple(tuple(k[:d]) for k, d in zip(kernel_slots, depths)),
                    tuple(tuple(e[:d]) for e, d in zip(expand_slots, depths)))

    def _slots(self, arch: Arch, rng: _Rng) -> tuple[list, list]:
        """Per-stage lists of ``max_depth`` kernels/expands: the arch's values, then random ones for the inactive."""
        ks = [list(k) + [rng.choice(self.kernel_choices) for _ in range(self.max_depth - len(k))] for k in arch.kernels]
        es = [list(e) + [rng.choice(self.expand_choices) for _ in range(self.max_depth - len(e))] for e in arch.expands]
        return ks, es

    def sample(self, generator=None, *, depths=None, kernels=None, expands=None) -> Arch:
        """A uniformly random arch; ``depths`` / ``kernels`` / ``expands`` restrict a dimension's choices
        (progressive shrinking samples only the dimensions made elastic so far).

        ``generator`` is a seed, a ``torch.Generator`` or a ``numpy.random.Generator``; ``None`` draws from
        torch's global generator (``torch.manual_seed``).

        Example:
            >>> get_space("ofa-mbconv").sample(torch.Generator().manual_seed(0), depths=(4,)).depths
            (4, 4, 4, 4)
        """
        rng = as_rng(generator)
        depths = tuple(depths or self.depth_choices)
        kernels = tuple(kernels or self.kernel_choices)
        expands = tuple(expands or self.expand_choices)
        ds = [rng.choice(depths) for _ in range(self.num_stages)]
        ks = [[rng.choice(kernels) for _ in range(d)] for d in ds]
        es = [[rng.choice(expands) for _ in range(d)] for d in ds]
        return Arch(tuple(ds), tuple(map(tuple, ks)), tuple(map(tuple, es)))

    def largest(self) -> Arch:
        d = self.max_depth
        return Arch((d,) * self.num_stages, ((max(self.kernel_choices),) * d,) * self.num_stages,
                    ((max(self.expand_choices),) * d,) * self.num_stages)

    def smallest(self) -> Arch:
        d = min(self.depth_choices)
        return Arch((d,) * self.num_stages, ((min(self.kernel_choices),) * d,) * self.num_stages,
                    ((min(self.expand_choices),) * d,) * self.num_stages)

    def mutate(self, arch: Arch, generator=None, probability: float = 0.1) -> Arch:
        """Resample each stage's depth and each block's kernel and expand ratio with ``probability``
        (blocks a deeper stage brings in get random values). Used by evolution.

        Example:
            >>> space = get_space("ofa-mbconv")
            >>> space.mutate(space.largest(), 0, probability=0.0) == space.largest()
            True
        """
        rng = as_rng(generator)
        arch = self.validate(arch)
        ks, es = self._slots(arch, rng)
        depths = [rng.choice(self.depth_choices) if rng.uniform() < probability else d for d in arch.depths]
        for s in range(self.num_stages):
            for b in range(self.max_depth):
                if rng.uniform() < probability:
                    ks[s][b] = rng.choice(self.kernel_choices)
                if rng.uniform() < probability:
                    es[s][b] = rng.choice(self.expand_choices)
        return self._from_slots(depths, ks, es)

    def crossover(self, a: Arch, b: Arch, generator=None) -> Arch:
        """A child taking each stage's depth and each block's kernel and expand ratio from ``a`` or ``b``
        with equal chance (a block only one parent has comes from that parent).

        Example:
            >>> space = get_space("ofa-mbconv")
            >>> space.crossover(space.largest(), space.largest(), 1) == space.largest()
            True
        """
        rng = as_rng(generator)
        a, b = self.validate(a), self.validate(b)
        depths = [x if rng.uniform() < 0.5 else y for x, y in zip(a.depths, b.depths)]
        ks, es = [], []
        for s, d in enumerate(depths):
            ks.append([]), es.append([])
            for i in range(d):
                for out, mine, theirs in ((ks[s], a.kernels[s], b.kernels[s]), (es[s], a.expands[s], b.expands[s])):
                    options = [v[i] for v in (mine, theirs) if i < len(v)]
                    out.append(options[0] if len(options) == 1 else rng.choice(options))
        return self._from_slots(depths, ks, es)

    # -- for the RL controller -------------------------------------------------------------------------------
    def decisions(self) -> list[tuple[str, int]]:
        """The controller's decisions in order, each ``(kind, number of choices)``: per stage its depth, then a
        kernel and an expand ratio for each of ``max_depth`` block slots."""
        per_stage = [("depth", len(self.depth_choices))]
        per_stage += [("kernel", len(self.kernel_choices)), ("expand", len(self.expand_choices))] * self.max_depth
        return per_stage * self.num_stages

    def from_decisions(self, indices: list[int]) -> tuple[Arch, list[bool]]:
        """The arch the decisions' choice indices make, and which decisions it uses (slots beyond a stage's
        depth are not used).

        Example:
            >>> space = get_space("ofa-mbconv")
            >>> arch, used = space.from_decisions([0] * len(space.decisions()))
            >>> arch == space.smallest(), sum(used)
            (True, 20)
        """
        it = iter(indices)
        depths, ks, es, used = [], [], [], []
        for _ in range(self.num_stages):
            depth = self.depth_choices[next(it)]
            used.append(True)
            k, e = [], []
            for b in range(self.max_depth):
                k.append(self.kernel_choices[next(it)])
                e.append(self.expand_choices[next(it)])
                used += [b < depth] * 2
            depths.append(depth), ks.append(k), es.append(e)
        return self._from_slots(depths, ks, es), used

    # -- encoding for predictors -------------------------------------------------------------------------
    @property
    def encoding_size(self) -> int:
        per_block = len(self.kernel_choices) + len(self.expand_choices)
        return self.num_stages * (len(self.depth_choices) + self.max_depth * per_block)

    def encode(self, arch: Arch) -> np.ndarray:
        """A fixed-length float32 vector: per stage a one-hot depth, then per block slot a one-hot kernel and
        a one-hot expand ratio (all zeros for a slot the depth skips).

        Example:
            >>> space = get_space("ofa-mbconv")
            >>> space.encode(space.smallest()).shape == (space.encoding_size,)
            True
        """
        arch = self.validate(arch)
        nk, ne = len(self.kernel_choices), len(self.expand_choices)
        out = np.zeros(self.encoding_size, dtype=np.float32)
        i = 0
        for s in range(self.num_stages):
            out[i + self.depth_choices.index(arch.depths[s])] = 1
            i += len(self.depth_choices)
            for b in range(self.max_depth):
                if b < arch.depths[s]:
                    out[i + self.kernel_choices.index(arch.kernels[s][b])] = 1
                    out[i + nk + self.expand_choices.index(arch.expands[s][b])] = 1
                i += nk + ne
        return out

    def size(self) -> int:
        """How many distinct archs the space holds."""
        per_block = len(self.kernel_choices) * len(self.expand_choices)
        return sum(per_block ** d for d in self.depth_choices) ** self.num_stages


@register_space("ofa-mbconv", description="elastic MBConv for 28x28 images: 4 stages, depth 2-4, kernel 3/5/7, "
                                          "expand 3/4/6")
def ofa_mbconv(**options) -> MBConvSpace:
    """Elastic MBConv space for 28x28 single-channel images (Fashion-MNIST), 10 classes."""
    options.pop("name", None)
    try:
        return MBConvSpace(name="ofa-mbconv", **options)
    except TypeError as exc:
        fields = [f.name for f in dataclasses.fields(MBConvSpace) if f.name != "name"]
        raise DeepslimError(f"search space 'ofa-mbconv': {exc}", hint=f"options: {', '.join(fields)}") from exc


def space_from_dict(data: dict) -> MBConvSpace:
    """Rebuild a space from ``space.to_dict()`` (its registered name and options)."""
    data = dict(data)
    data.pop("type", None)
    name = data.pop("name", None)
    if name is None:
        raise DeepslimError("the space description has no 'name'", hint=f"spaces: {', '.join(list_spaces())}")
    return get_space(name, **data)
