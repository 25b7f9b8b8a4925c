"""Sparse weights stored as a bitmask plus their non-zero values, so files shrink with sparsity.

safetensors has no sparse type; a tensor that is mostly zeros is stored as two tensors,
``<key>::bitmask`` (uint8, packed bits, 1 = non-zero) and ``<key>::values`` (the non-zeros in
order), and listed in the file's metadata. ``unpack`` restores the dense tensor exactly.
"""

from __future__ import annotations

import json

import numpy as np
import torch

MASK_SUFFIX, VALUES_SUFFIX = "::bitmask", "::values"
# Store compactly only when it saves at least this fraction of the dense bytes.
MIN_SAVING = 0.2


def compact_bytes(tensor: torch.Tensor) -> int:
    n = tensor.numel()
    return (n + 7) // 8 + int(torch.count_nonzero(tensor)) * tensor.element_size()


def pack(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Replace sparse floating-point tensors by bitmask + values; returns tensors and file metadata."""
    out, packed = {}, {}
    for key, t in tensors.items():
        dense = t.numel() * t.element_size()
        if t.is_floating_point() and t.numel() >= 64 and compact_bytes(t) <= (1 - MIN_SAVING) * dense:
            flat = t.flatten()
            nonzero = flat != 0
            out[key + MASK_SUFFIX] = torch.from_numpy(np.packbits(nonzero.numpy().astype(np.uint8)))
            out[key + VALUES_SUFFIX] = flat[nonzero].contiguous()
            packed[key] = list(t.shape)
        else:
            out[key] = t
    return out, ({"compact": json.dumps(packed)} if packed else {})


def unpack(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> dict[str, torch.Tensor]:
    """Inverse of ``pack``."""
    packed = json.loads((metadata or {}).get("compact", "{}"))
    out = {k: v for k, v in tensors.items() if not k.endswith((MASK_SUFFIX, VALUES_SUFFIX))}
    for key, shape in packed.items():
        numel = int(np.prod(shape)) if shape else 1
        bits = np.unpackbits(tensors[key + MASK_SUFFIX].numpy(), count=numel).astype(bool)
        values = tensors[key + VALUES_SUFFIX]
        dense = torch.zeros(numel, dtype=values.dtype)
        dense[torch.from_numpy(bits)] = values
        out[key] = dense.view(shape)
    return out
