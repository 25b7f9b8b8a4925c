"""Masks for unstructured pruning: magnitude (layer or global), random, and N:M."""

from __future__ import annotations

import torch
from torch import nn

from .config import MagnitudePruning, NMSparsity, RandomPruning


def _keep_largest(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Mask keeping the ``1 - sparsity`` fraction of largest scores (exact count, ties broken by index)."""
    flat = scores.flatten()
    n_prune = int(round(sparsity * flat.numel()))
    mask = torch.ones_like(flat, dtype=torch.bool)
    if n_prune:
        mask[torch.argsort(flat, stable=True)[:n_prune]] = False
    return mask.view_as(scores)


def magnitude_masks(layers: dict[str, nn.Module], cfg: MagnitudePruning | RandomPruning,
                    previous: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Masks zeroing ``cfg.sparsity`` of the weights; already-pruned weights stay pruned.

    Random pruning scores weights with seeded noise instead of their magnitude.
    """
    previous = previous or {}
    scores = {}
    generator = torch.Generator().manual_seed(getattr(cfg, "seed", 0))
    for name, module in layers.items():
        w = module.weight.detach().cpu()
        s = torch.rand(w.shape, generator=generator) if isinstance(cfg, RandomPruning) else w.abs()
        if name in previous:  # masks only shrink: pruned weights (score -1) rank below every kept one
            s = torch.where(previous[name].cpu(), s, torch.full_like(s, -1.0))
        scores[name] = s
    if cfg.scope == "layer":
        return {name: _keep_largest(s, cfg.sparsity) for name, s in scores.items()}
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = _keep_largest(flat, cfg.sparsity)
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = keep[start:start + s.numel()].view_as(s)
        start += s.numel()
    return out


def nm_masks(layers: dict[str, nn.Module], cfg: NMSparsity) -> dict[str, torch.Tensor]:
    """Keep the ``n`` largest-magnitude weights in every group of ``m`` along the input dimension.

    Groups run over the flattened input dimension (``in_features``, or ``in_channels x k x k``
    for convs), as sparse tensor cores expect. A trailing partial group keeps
    ``ceil(n * size / m)`` of its weights.
    """
    out = {}
    for name, module in layers.items():
        w = module.weight.detach().cpu()
        rows = w.reshape(w.shape[0], -1).abs()
        cols = rows.shape[1]
        mask = torch.zeros_like(rows, dtype=torch.bool)
        for start in range(0, cols, cfg.m):
            block = rows[:, start:start + cfg.m]
            keep = min(block.shape[1], -(-cfg.n * block.shape[1] // cfg.m))
            idx = torch.topk(block, keep, dim=1).indices + start
            mask.scatter_(1, idx, True)
        out[name] = mask.view_as(w)
    return out
