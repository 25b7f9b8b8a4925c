"""The latency table for *this* hardware: per-block ONNX Runtime latency of every block a space allows, and a
predictor that sums it.

Every part a subnet can be made of is exported alone as a tiny ONNX model and timed on ONNX Runtime (CPU,
threads fixed): the stem, the head (1x1 head conv, pooling, classifier) and, per stage, the first block
(which changes width and stride) and the later blocks (residual), for every kernel and expand ratio, at that
block's input size. ``predict(arch, batch)`` is the sum of the arch's parts plus a fitted overhead per batch
size: a constant and a (negative) per-part term, fitted on a few whole subnets timed in the same sweeps (see
``LatencyTable.predict`` for why). The table is JSON with the
environment it was measured in and the space it describes; ``LatencyTable.load`` refuses a corrupt or
foreign file with a one-line error.

Example:
    >>> from deepslim.nas import get_space
    >>> space = get_space("ofa-mbconv", widths=(8, 16), strides=(1, 2), depth_choices=(1, 2),
    ...                   kernel_choices=(3, 5), expand_choices=(3, 6))
    >>> table = build_latency_table(space, batch_sizes=(1,), min_seconds=0.01)   # doctest: +SKIP
    >>> table.predict(space.largest(), 1) > 0                                    # doctest: +SKIP
    True
    >>> table.save("runs/ofa/latency.json")                                      # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..core import DeepslimError, log, progress
from .onnx_timing import export_part, randomise_bn_, time_parts
from .parts import arch_keys, space_parts
from .space import Arch, MBConvSpace, space_from_dict

FORMAT = "deepslim-latency-table"
VERSION = 1
FILENAME = "latency.json"


@dataclass
class LatencyTable:
    """Per-part ONNX Runtime latency (ms) of a space, per batch size, and the predictor built on it.

    ``entries[key][batch]`` is a part's median latency; ``overhead_ms[batch]`` and ``per_part_ms[batch]`` the
    fitted overhead (``predict``);
    ``quality`` what ``predictor_quality`` reported, when it was run.
    """

    space: MBConvSpace
    batch_sizes: tuple[int, ...]
    entries: dict[str, dict[int, float]]
    overhead_ms: dict[int, float]
    per_part_ms: dict[int, float] = field(default_factory=dict)
    image_size: int = 28
    environment: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    fit: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)

    # -- prediction ---------------------------------------------------------------------------------
    def parts_ms(self, arch: Arch | dict, batch: int = 1) -> float:
        """The sum of the arch's parts (stem, blocks, head) at ``batch``, without the overhead."""
        arch = self.space.validate(arch)
        batch = self._batch(batch)
        return float(sum(self.entries[key][batch] for key in arch_keys(arch)))

    def predict(self, arch: Arch | dict, batch: int = 1) -> float:
        """Predicted ms of the whole subnet at ``batch``: the sum of its parts plus
        ``overhead_ms[batch] + per_part_ms[batch] x (number of parts)``.

        Why an overhead: each part was timed as its own ONNX model, so the sum pays ORT's fixed cost of a
        call (feeding the input, allocating the output, dispatching to the thread pool) once per part, while a
        whole net pays it once; and the whole net's graph optimiser may fuse across block boundaries. Archs have
        different numbers of blocks, so the per-call part scales with the part count (``per_part_ms``, about
        minus the cost of one call) and the rest is a constant (``overhead_ms``). Both are fitted by least
        squares on the whole subnets timed with the parts (``fit``); with fewer than 3 of them, or all with the
        same part count, ``per_part_ms`` is 0 and ``overhead_ms`` the median residual. The resulting errors are
        what ``predictor_quality`` reports.
        """
        arch = self.space.validate(arch)
        batch = self._batch(batch)
        return self.parts_ms(arch, batch) + self.overhead_ms[batch] + \
            self.per_part_ms.get(batch, 0.0) * len(arch_keys(arch))

    def latency_fn(self, batch: int = 1) -> Callable[[Arch, nn.Module], float]:
        """The ``Evaluator``'s latency hook: ``latency(arch, model) -> predicted ms`` (the model is unused).

        Example:
            >>> judge = Evaluator(net, data.train, data.val, latency=table.latency_fn(1))  # doctest: +SKIP
        """
        batch = self._batch(batch)
        return lambda arch, model=None: self.predict(arch, batch)

    def _batch(self, batch: int) -> int:
        if batch not in self.batch_sizes:
            raise DeepslimError(f"the latency table has no batch size {batch}",
                                hint=f"it was measured at batch {', '.join(map(str, self.batch_sizes))}; rebuild "
                                     f"it with that batch size (`deepslim nas latency-table DIR --batch-sizes ...`)")
        return batch

    # -- JSON ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "space": self.space.to_dict(), "image_size": self.image_size,
                "batch_sizes": list(self.batch_sizes), "environment": self.environment, "settings": self.settings,
                "entries": {k: {str(b): v for b, v in row.items()} for k, row in self.entries.items()},
                "overhead_ms": {str(b): v for b, v in self.overhead_ms.items()},
                "per_part_ms": {str(b): self.per_part_ms.get(b, 0.0) for b in self.batch_sizes}, "fit": self.fit,
                "quality": self.quality}

    def save(self, path: str | Path) -> Path:
        from ..export.files import write_atomic

        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1)
        write_atomic(path, lambda tmp: Path(tmp).write_text(text))
        return path

    @classmethod
    def from_dict(cls, data, where: str = "the latency table", space: MBConvSpace | None = None) -> "LatencyTable":
        """Rebuild and validate a table; ``space`` (e.g. the supernet's) must be the one it was measured for."""
        rebuild = "rebuild it with `deepslim nas latency-table DIR`"
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DeepslimError(f"{where} is not a deepslim latency table", hint=rebuild)
        if data.get("version") != VERSION:
            raise DeepslimError(f"{where} has format version {data.get('version')!r}, this deepslim reads {VERSION}",
                                hint=rebuild)
        try:
            own = space_from_dict(data["space"])
        except (DeepslimError, KeyError, TypeError) as exc:
            raise DeepslimError(f"{where} describes no known search space", hint=rebuild) from exc
        if space is not None and own.to_dict() != space.to_dict():
            raise DeepslimError(f"{where} was measured for another search space ({own.name} with other options)",
                                hint="use the table built for this supernet: " + rebuild)
        try:
            batches = tuple(int(b) for b in data["batch_sizes"])
            image_size = int(data.get("image_size", 28))
            raw, raw_overhead = data["entries"], data["overhead_ms"]
            if not batches or not isinstance(raw, dict) or not isinstance(raw_overhead, dict):
                raise TypeError("empty")
        except (KeyError, TypeError, ValueError) as exc:
            raise DeepslimError(f"{where} is incomplete (batch_sizes, entries or overhead_ms)", hint=rebuild) from exc
        keys = [p.key for p in space_parts(own, image_size)]
        missing = [k for k in keys if k not in raw or not isinstance(raw[k], dict)
                   or any(str(b) not in raw[k] for b in batches)]
        if missing:
            raise DeepslimError(f"{where} lacks {len(missing)} entr{'y' if len(missing) == 1 else 'ies'} "
                                f"(e.g. {missing[0]})", hint=rebuild)
        entries, bad = {}, []
        for k in keys:
            entries[k] = {}
            for b in batches:
                v = raw[k][str(b)]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                    bad.append(f"{k} at batch {b} = {v!r}")
                else:
                    entries[k][b] = float(v)
        if bad:
            raise DeepslimError(f"{where} has a bad entry: {bad[0]} (latencies are positive numbers)", hint=rebuild)
        overhead = {}
        for b in batches:
            v = raw_overhead.get(str(b))
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise DeepslimError(f"{where} has no valid overhead_ms for batch {b}", hint=rebuild)
            overhead[b] = float(v)
        raw_per_part = data.get("per_part_ms", {})
        per_part = {}
        for b in batches:
            v = raw_per_part.get(str(b)) if isinstance(raw_per_part, dict) else None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise DeepslimError(f"{where} has no valid per_part_ms for batch {b}", hint=rebuild)
            per_part[b] = float(v)
        return cls(own, batches, entries, overhead, per_part, image_size, dict(data.get("environment") or {}),
                   dict(data.get("settings") or {}), dict(data.get("fit") or {}), dict(data.get("quality") or {}))

    @classmethod
    def load(cls, path: str | Path, space: MBConvSpace | None = None) -> "LatencyTable":
        """Read and validate ``path``; a corrupt or foreign file is refused with a one-line ``DeepslimError``."""
        path = Path(path)
        if not path.is_file():
            raise DeepslimError(f"no latency table at {path}",
                                hint=f"build it with `deepslim nas latency-table {path.parent}`")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DeepslimError(f"{path} is not valid JSON ({exc})",
                                hint=f"rebuild it with `deepslim nas latency-table {path.parent}`") from exc
        return cls.from_dict(data, str(path), space)


# ---------------------------------------------------------------------------------------------------------
def _environment(threads: int) -> dict:
    from ..profiling.environment import environment

    return {**environment(), "runtime": "onnxruntime", "device": "cpu", "threads": threads,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _fit_archs(space: MBConvSpace, n: int, seed: int) -> list[Arch]:
    archs = [space.smallest(), space.largest()]
    rng = np.random.default_rng(seed)
    while len(archs) < n and len({a.key() for a in archs}) < space.size():
        a = space.sample(rng)
        if a.key() not in {x.key() for x in archs}:
            archs.append(a)
    return archs[:max(n, 1)]


def _random_supernet(space: MBConvSpace):
    from .supernet import OFASupernet

    torch.manual_seed(0)
    return randomise_bn_(OFASupernet.from_space(space, "crop"))


def _whole_model(space: MBConvSpace, arch: Arch, supernet=None) -> nn.Module:
    from .subnet import extract_subnet

    return extract_subnet(supernet if supernet is not None else _random_supernet(space), arch).eval()


def measure_subnets(space: MBConvSpace, archs: list[Arch], batch_sizes, *, image_size: int = 28, threads: int = 2,
                    min_seconds: float = 0.2, rounds: int = 1, supernet=None, desc: str = "whole subnets"
                    ) -> list[dict[int, float]]:
    """Measured ms of each arch's whole extracted subnet (exported to ONNX) at each batch size."""
    supernet = supernet if supernet is not None else _random_supernet(space)
    with tempfile.TemporaryDirectory(prefix="deepslim-nas-latency-") as tmp:
        items = []
        for i, arch in enumerate(archs):
            path = export_part(_whole_model(space, arch, supernet), Path(tmp) / f"subnet{i}.onnx",
                               (space.in_channels, image_size, image_size))
            items.append((str(i), path, (space.in_channels, image_size, image_size)))
        timed = time_parts(items, batch_sizes, threads, min_seconds, rounds, desc)
    return [timed[str(i)] for i in range(len(archs))]


def build_latency_table(space: MBConvSpace, *, batch_sizes=(1, 64), threads: int = 2, min_seconds: float = 0.1,
                        rounds: int = 3, image_size: int = 28, fit_subnets: int = 10, seed: int = 0) -> LatencyTable:
    """Measure every part of ``space`` on ONNX Runtime (CPU, ``threads`` threads) at each batch size, and fit
    the overhead on ``fit_subnets`` whole subnets (the smallest, the largest and random ones by ``seed``), timed
    in the same sweeps as the parts so that a slow drift of the machine hits both alike.

    Each part is timed for at least ``min_seconds`` per batch size in each of ``rounds`` sweeps; the entry is
    the median over sweeps. Weights are random (latency does not depend on their values).
    """
    batch_sizes = tuple(int(b) for b in batch_sizes)
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise DeepslimError(f"batch sizes {batch_sizes} must be positive integers", hint="e.g. 1,64")
    if not isinstance(threads, int) or threads < 1:
        raise DeepslimError(f"threads = {threads!r} must be a positive integer", hint="e.g. 2")
    if not isinstance(rounds, int) or rounds < 1:
        raise DeepslimError(f"rounds = {rounds!r} must be a positive integer")
    if not min_seconds > 0:
        raise DeepslimError(f"min_seconds = {min_seconds!r} must be positive", hint="e.g. 0.2")
    parts = space_parts(space, image_size)
    archs = _fit_archs(space, fit_subnets, seed)
    whole_shape = (space.in_channels, image_size, image_size)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deepslim-nas-parts-") as tmp:
        items = []
        for part in progress(parts, desc="export parts"):
            torch.manual_seed(0)
            items.append((part.key, export_part(randomise_bn_(part.build()), Path(tmp) / f"{part.key}.onnx",
                                                part.input_shape), part.input_shape))
        supernet = _random_supernet(space)
        for i, arch in enumerate(archs):
            path = export_part(_whole_model(space, arch, supernet), Path(tmp) / f"fit{i}.onnx", whole_shape)
            items.append((f"fit{i}", path, whole_shape))
        timed = time_parts(items, batch_sizes, threads, min_seconds, rounds, "time parts")
    entries = {p.key: timed[p.key] for p in parts}
    measured = [timed[f"fit{i}"] for i in range(len(archs))]
    table = LatencyTable(space, batch_sizes, entries, {b: 0.0 for b in batch_sizes}, {b: 0.0 for b in batch_sizes},
                         image_size, _environment(threads),
                         {"min_seconds": min_seconds, "rounds": rounds, "fit_subnets": len(archs), "seed": seed,
                          "parts": len(parts)})
    sums = [{b: table.parts_ms(a, b) for b in batch_sizes} for a in archs]
    counts = np.array([len(arch_keys(a)) for a in archs], dtype=float)
    for b in batch_sizes:
        residual = np.array([m[b] - s_[b] for m, s_ in zip(measured, sums)])
        if len(archs) >= 3 and np.ptp(counts) > 0:
            design = np.stack([np.ones_like(counts), counts], axis=1)
            constant, per_part = np.linalg.lstsq(design, residual, rcond=None)[0]
        else:
            constant, per_part = float(np.median(residual)), 0.0
        table.overhead_ms[b], table.per_part_ms[b] = float(constant), float(per_part)
    table.fit = {"archs": [a.to_dict() for a in archs],
                 "measured_ms": [{str(b): m[b] for b in batch_sizes} for m in measured],
                 "parts_sum_ms": [{str(b): x[b] for b in batch_sizes} for x in sums]}
    table.settings["seconds"] = round(time.perf_counter() - started, 1)
    log(f"latency table: {len(parts)} parts at batch {', '.join(map(str, batch_sizes))}, {threads} threads, "
        "overhead " + ", ".join(f"{table.overhead_ms[b]:+.4f} ms {table.per_part_ms[b]:+.4f} ms/part (batch {b})"
                                for b in batch_sizes))
    return table
