"""A tiny Vision Transformer (Dosovitskiy et al., 2021): patch embedding + pre-norm encoder.

Attention is written out (separate q/k/v projections, explicit ``num_heads``) rather than
using ``nn.MultiheadAttention``, so later stages can prune heads and FFN neurons by
editing ordinary Linear layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core import SerializableModule
from .common import check_positive
from .registry import register_model


class Attention(SerializableModule):
    """Multi-head self-attention over ``(batch, tokens, dim)`` with ``head_dim`` per head."""

    def __init__(self, dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.q = nn.Linear(dim, inner)
        self.k = nn.Linear(dim, inner)
        self.v = nn.Linear(dim, inner)
        self.proj = nn.Linear(inner, dim)

    def forward(self, x):
        b, n, _ = x.shape

        def heads(t):
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)))
        return self.proj(out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class EncoderBlock(SerializableModule):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_dim, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class ViT(SerializableModule):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, patch_size: int = 4,
                 dim: int = 64, depth: int = 4, num_heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        for k, v in (("in_channels", in_channels), ("num_classes", num_classes), ("image_size", image_size),
                     ("patch_size", patch_size), ("dim", dim), ("depth", depth), ("num_heads", num_heads)):
            check_positive(k, v, "vit-tiny")
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        tokens = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[EncoderBlock(dim, num_heads, dim // num_heads, int(dim * mlp_ratio))
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


@register_model("vit-tiny", family="transformer")
def vit_tiny(in_channels: int = 1, num_classes: int = 10, image_size: int = 28, patch_size: int = 4, dim: int = 64,
             depth: int = 4, num_heads: int = 4, mlp_ratio: float = 2.0) -> nn.Module:
    """Tiny ViT: 4x4 patches, 4 pre-norm encoder blocks of width 64 with 4 heads (~0.14M params)."""
    return ViT(in_channels, num_classes, image_size, patch_size, dim, depth, num_heads, mlp_ratio)
