"""Size of a model: on disk, and when its weights are stored compactly.

A pruned weight matrix stored densely is no smaller; a 2-bit weight stored as float32
is no smaller either. ``compact_weight_bytes`` is the size a sparse / low-bit aware
format needs, so reports can say how much smaller a model *could* ship, separately from
what the current files take.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn


def path_bytes(path: str | Path) -> int:
    """Bytes of a file, or of every file under a folder.

    Example:
        >>> path_bytes("README.md") > 0   # doctest: +SKIP
        True
    """
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _codebook_bytes(count: int, distinct: int, width: int) -> int:
    bits = math.ceil(math.log2(distinct)) if distinct > 1 else 0
    return math.ceil(count * bits / 8) + distinct * width


def compact_tensor_bytes(tensor: torch.Tensor) -> int:
    """Fewest bytes among three encodings of ``tensor``.

    - dense: every element at its dtype's width;
    - codebook: when it holds at most 256 distinct values, ceil(log2(k)) bits per element
      plus the k values (how binary, ternary and int-k weights are stored);
    - bitmask sparse: one bit per element saying zero / non-zero, plus the non-zeros
      (themselves dense or as a codebook, whichever is smaller).
    """
    t = tensor.detach().flatten()
    n, width = t.numel(), t.element_size()
    if n == 0:
        return 0
    distinct = len(torch.unique(t))
    best = n * width
    if distinct <= 256:
        best = min(best, _codebook_bytes(n, distinct, width))
    nonzero = int(torch.count_nonzero(t))
    if nonzero < n:
        nz_bytes = nonzero * width
        if distinct - 1 <= 256:
            nz_bytes = min(nz_bytes, _codebook_bytes(nonzero, distinct - 1, width))
        best = min(best, math.ceil(n / 8) + nz_bytes)
    return best


def compact_weight_bytes(model: nn.Module) -> dict[str, int]:
    """Dense and compact bytes of all parameters and buffers.

    Example:
        >>> lin = nn.Linear(100, 100, bias=False)
        >>> with torch.no_grad():
        ...     lin.weight[:, 50:] = 0
        >>> sizes = compact_weight_bytes(lin)
        >>> sizes["dense_bytes"], sizes["compact_bytes"] < sizes["dense_bytes"]
        (40000, True)
    """
    tensors = list(model.parameters()) + list(model.buffers())
    dense = sum(t.numel() * t.element_size() for t in tensors)
    compact = sum(compact_tensor_bytes(t) for t in tensors)
    return {"dense_bytes": dense, "compact_bytes": compact}


def stored_weights(model_dir: str | Path) -> dict:
    """Bytes of a saved model's ``weights.safetensors`` and how ``deepslim.save`` encoded it.

    ``encoding`` is "bit-packed" (binary/ternary/k-bit codebooks), "sparse bitmask" (pruned
    weights), both joined by "+", or "dense": the file, not the in-memory tensors, is what a
    bit-packed or sparse model ships as.

    Example:
        >>> stored_weights("runs/binary")                    # doctest: +SKIP
        {'bytes': 26112, 'encoding': 'bit-packed'}
    """
    from safetensors import safe_open

    file = Path(model_dir) / "weights.safetensors"
    with safe_open(str(file), framework="pt") as fh:
        meta = fh.metadata() or {}
    # The header keys export/compact.py's ``pack`` writes for each encoding.
    kinds = [label for key, label in (("codebook", "bit-packed"), ("compact", "sparse bitmask")) if meta.get(key)]
    return {"bytes": file.stat().st_size, "encoding": " + ".join(kinds) or "dense"}
