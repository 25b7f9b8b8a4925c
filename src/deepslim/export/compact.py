"""Weights stored compactly, so files shrink with sparsity and with low-bit quantization.

safetensors has no sparse or sub-byte types, so two encodings are built from ordinary tensors:

- **codebook**: a tensor whose every row (output channel) holds at most 2^b distinct values,
  b <= 4 (binary, ternary, k-bit weights), is stored as ``<key>::codes`` (b-bit indices,
  packed into uint8) and ``<key>::codebook`` (rows x 2^b values);
- **bitmask**: a tensor that is mostly zeros is stored as ``<key>::bitmask`` (packed bits,
  1 = non-zero) and ``<key>::values`` (the non-zeros in order).

Both are listed in the file's metadata; ``unpack`` restores the dense tensors exactly.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch

MASK_SUFFIX, VALUES_SUFFIX = "::bitmask", "::values"
CODES_SUFFIX, BOOK_SUFFIX = "::codes", "::codebook"
MAX_CODE_BITS = 4
# Store compactly only when it saves at least this fraction of the dense bytes.
MIN_SAVING = 0.2


def compact_bytes(tensor: torch.Tensor) -> int:
    n = tensor.numel()
    return (n + 7) // 8 + int(torch.count_nonzero(tensor)) * tensor.element_size()


def _row_codebook(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """(codes, codebook, bits) when every row has at most 2^MAX_CODE_BITS distinct values."""
    if t.ndim < 2:
        return None
    rows = t.reshape(t.shape[0], -1)
    uniques = [torch.unique(r) for r in rows]
    most = max(len(u) for u in uniques)
    if most > 2**MAX_CODE_BITS:
        return None
    bits = max(1, math.ceil(math.log2(most)))
    book = torch.zeros(rows.shape[0], 2**bits, dtype=t.dtype)
    codes = torch.empty(rows.shape, dtype=torch.uint8)
    for i, (row, u) in enumerate(zip(rows, uniques)):
        book[i, : len(u)] = u
        codes[i] = torch.searchsorted(u, row).to(torch.uint8)
    return codes, book, bits


def _pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    as_bits = np.unpackbits(codes.numpy().reshape(-1, 1), axis=1)[:, 8 - bits:]  # low ``bits`` bits, MSB first
    return torch.from_numpy(np.packbits(as_bits.ravel()))


def _unpack_codes(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    as_bits = np.unpackbits(packed.numpy(), count=count * bits).reshape(count, bits)
    weights = 1 << np.arange(bits - 1, -1, -1)
    return torch.from_numpy((as_bits * weights).sum(axis=1).astype(np.int64))


def pack(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Replace low-bit or sparse floating-point tensors by compact forms; returns tensors and file metadata."""
    out, packed, coded = {}, {}, {}
    for key, t in tensors.items():
        dense = t.numel() * t.element_size()
        book = _row_codebook(t) if t.is_floating_point() and t.numel() >= 64 else None
        if book is not None:
            codes, codebook, bits = book
            if (t.numel() * bits + 7) // 8 + codebook.numel() * t.element_size() <= (1 - MIN_SAVING) * dense:
                out[key + CODES_SUFFIX] = _pack_codes(codes.flatten(), bits)
                out[key + BOOK_SUFFIX] = codebook.contiguous()
                coded[key] = [list(t.shape), bits]
                continue
        if t.is_floating_point() and t.numel() >= 64 and compact_bytes(t) <= (1 - MIN_SAVING) * dense:
            flat = t.flatten()
            nonzero = flat != 0
            out[key + MASK_SUFFIX] = torch.from_numpy(np.packbits(nonzero.numpy().astype(np.uint8)))
            out[key + VALUES_SUFFIX] = flat[nonzero].contiguous()
            packed[key] = list(t.shape)
        else:
            out[key] = t
    meta = {}
    if packed:
        meta["compact"] = json.dumps(packed)
    if coded:
        meta["codebook"] = json.dumps(coded)
    return out, meta


def unpack(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> dict[str, torch.Tensor]:
    """Inverse of ``pack``."""
    packed = json.loads((metadata or {}).get("compact", "{}"))
    coded = json.loads((metadata or {}).get("codebook", "{}"))
    suffixes = (MASK_SUFFIX, VALUES_SUFFIX, CODES_SUFFIX, BOOK_SUFFIX)
    out = {k: v for k, v in tensors.items() if not k.endswith(suffixes)}
    for key, (shape, bits) in coded.items():
        book = tensors[key + BOOK_SUFFIX]
        count = int(np.prod(shape))
        codes = _unpack_codes(tensors[key + CODES_SUFFIX], bits, count).reshape(shape[0], -1)
        out[key] = torch.gather(book, 1, codes).reshape(shape)
    for key, shape in packed.items():
        numel = int(np.prod(shape)) if shape else 1
        bits = np.unpackbits(tensors[key + MASK_SUFFIX].numpy(), count=numel).astype(bool)
        values = tensors[key + VALUES_SUFFIX]
        dense = torch.zeros(numel, dtype=values.dtype)
        dense[torch.from_numpy(bits)] = values
        out[key] = dense.view(shape)
    return out
