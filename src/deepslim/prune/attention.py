"""Attention modules whose heads can be removed, and the bookkeeping after Torch-Pruning removes them.

Torch-Pruning removes whole heads from attention written with separate q/k/v ``nn.Linear``
layers when told each projection's head count (``num_heads``), but it does not know which
attributes a module's ``forward`` reads its head count from, and it can only shrink the
embedding width of ``nn.MultiheadAttention`` (whose packed projection and fused kernels tie the
inner width to the model width). This file adds what it lacks:

- ``SplitMultiheadAttention``: ``nn.MultiheadAttention``'s maths and call signature with q/k/v/out
  as separate Linear layers, so the inner width (``num_heads * head_dim``) may shrink while the
  model width stays; ``split_multihead_attention_`` swaps it in for every ``nn.MultiheadAttention``
  (outputs unchanged);
- ``attention_layers``: the attention modules of a model in the three layouts we know (Hugging Face
  BERT-style ``query/key/value`` + ``num_attention_heads``, ``SplitMultiheadAttention``, and
  ``q/k/v`` + ``num_heads`` like the zoo's ViT) and their projections;
- ``sync_attention``: rewrites the head count and widths those modules' ``forward`` reads, from the
  pruned Linear layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core import DeepslimError, SerializableModule, set_submodule


@dataclass(frozen=True)
class Layout:
    """Where an attention module keeps its q/k/v projections and its head count."""

    projections: tuple[str, str, str]
    heads: str
    name: str


HF_BERT = Layout(("query", "key", "value"), "num_attention_heads", "Hugging Face BERT-style self-attention")
SPLIT = Layout(("q_proj", "k_proj", "v_proj"), "num_heads", "SplitMultiheadAttention")
QKV = Layout(("q", "k", "v"), "num_heads", "q/k/v attention")
LAYOUTS = (HF_BERT, SPLIT, QKV)


def layout_of(module: nn.Module) -> Layout | None:
    """The layout ``module`` follows, or ``None`` when it is not an attention module we can edit."""
    for layout in LAYOUTS:
        if isinstance(getattr(module, layout.heads, None), int) and all(
                isinstance(getattr(module, p, None), nn.Linear) for p in layout.projections):
            return layout
    return None


def attention_layers(model: nn.Module) -> dict[str, tuple[nn.Module, Layout]]:
    """``name -> (module, layout)`` for every attention module of ``model`` with editable heads.

    Example:
        >>> import deepslim
        >>> sorted(attention_layers(deepslim.create_model("vit-tiny")))[:2]
        ['blocks.0.attn', 'blocks.1.attn']
    """
    found = {}
    for name, module in model.named_modules():
        layout = layout_of(module)
        if layout is not None:
            found[name] = (module, layout)
    return found


def projections(module: nn.Module, layout: Layout) -> list[nn.Linear]:
    return [getattr(module, p) for p in layout.projections]


def sync_attention(module: nn.Module, layout: Layout, heads: int | None = None) -> None:
    """Make the attributes ``forward`` reads agree with the pruned projections (``heads``: the new
    head count when whole heads were removed; else the count is kept and the head width follows)."""
    q = getattr(module, layout.projections[0])
    if heads is not None:
        setattr(module, layout.heads, heads)
    count = getattr(module, layout.heads)
    if layout is HF_BERT:
        module.attention_head_size = q.out_features // count
        module.all_head_size = q.out_features
    elif layout is SPLIT:
        module.head_dim = q.out_features // count
        module.embed_dim = module.out_proj.out_features
        module.kdim, module.vdim = module.k_proj.in_features, module.v_proj.in_features
    elif isinstance(getattr(module, "head_dim", None), int):
        module.head_dim = q.out_features // count


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask (True = do not attend) as the additive float mask attention adds to its scores."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


class SplitMultiheadAttention(SerializableModule):
    """``nn.MultiheadAttention`` with separate q/k/v/out Linear layers, so heads can be removed.

    Same arguments, call signature, maths and outputs as ``nn.MultiheadAttention`` (masks,
    ``need_weights``, ``batch_first``, unbatched inputs), except ``add_bias_kv``/``add_zero_attn``.
    Its inner width ``num_heads * head_dim`` may differ from ``embed_dim``: that is what head pruning
    changes. Build one from an existing module with ``from_multihead_attention``.

    Example:
        >>> mha = nn.MultiheadAttention(16, 4, batch_first=True)
        >>> split = SplitMultiheadAttention.from_multihead_attention(mha)
        >>> x = torch.randn(2, 5, 16)
        >>> bool(torch.allclose(split(x, x, x)[0], mha(x, x, x)[0], atol=1e-6))
        True
    """

    # Attributes nn.Transformer* layers read to choose their fused fast path: these values turn it
    # off (the fused kernels assume packed projections as wide as the model).
    _qkv_same_embed_dim = False
    in_proj_weight = None
    in_proj_bias = None

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int | None = None, dropout: float = 0.0,
                 bias: bool = True, kdim: int | None = None, vdim: int | None = None, batch_first: bool = False):
        super().__init__()
        head_dim = head_dim or embed_dim // num_heads
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.dropout, self.batch_first = dropout, batch_first
        inner = num_heads * head_dim
        self.q_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.k_proj = nn.Linear(self.kdim, inner, bias=bias)
        self.v_proj = nn.Linear(self.vdim, inner, bias=bias)
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)

    @classmethod
    def from_multihead_attention(cls, mha: nn.MultiheadAttention) -> "SplitMultiheadAttention":
        """The same attention, weights copied, on ``mha``'s device and dtype."""
        if mha.bias_k is not None or mha.add_zero_attn:
            raise DeepslimError("an nn.MultiheadAttention with add_bias_kv or add_zero_attn cannot have its heads "
                                "pruned", hint="prune it with ChannelPruning, or skip head pruning for this model")
        bias = mha.in_proj_bias is not None
        split = cls(mha.embed_dim, mha.num_heads, mha.head_dim, mha.dropout, bias, mha.kdim, mha.vdim,
                    mha.batch_first).to(device=mha.out_proj.weight.device, dtype=mha.out_proj.weight.dtype)
        if mha._qkv_same_embed_dim:
            weights = mha.in_proj_weight.chunk(3)
        else:
            weights = (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
        biases = mha.in_proj_bias.chunk(3) if bias else (None, None, None)
        with torch.no_grad():
            for layer, w, b in zip((split.q_proj, split.k_proj, split.v_proj), weights, biases):
                layer.weight.copy_(w)
                if b is not None:
                    layer.bias.copy_(b)
            split.out_proj.weight.copy_(mha.out_proj.weight)
            if bias:
                split.out_proj.bias.copy_(mha.out_proj.bias)
        return split.train(mha.training)

    def _mask(self, attn_mask, key_padding_mask, batch: int, dtype) -> torch.Tensor | None:
        mask = None
        if attn_mask is not None:
            mask = _additive(attn_mask, dtype)
            if mask.dim() == 3:  # one mask per (sample, head)
                if mask.shape[0] != batch * self.num_heads:
                    raise DeepslimError(f"a per-head attn_mask of {mask.shape[0]} masks does not fit {batch} samples "
                                        f"x {self.num_heads} heads (heads were pruned)",
                                        hint="pass a 2-D (L, S) attn_mask, or one mask per remaining head")
                mask = mask.unflatten(0, (batch, self.num_heads))
        if key_padding_mask is not None:
            padding = _additive(key_padding_mask, dtype)[:, None, None, :]
            mask = padding if mask is None else mask + padding
        return mask

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                average_attn_weights: bool = True, is_causal: bool = False):
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        q, k, v = (proj(t).unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)
                   for proj, t in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value)))
        mask = self._mask(attn_mask, key_padding_mask, q.shape[0], q.dtype)
        causal = is_causal and mask is None  # like nn.MultiheadAttention, is_causal is a hint when a mask is given
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)
            if causal:
                scores = scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device)
                                            .triu(1), float("-inf"))
            elif mask is not None:
                scores = scores + mask
            weights = scores.softmax(-1)
            out = F.dropout(weights, dropout, self.training) @ v
            weights = weights.mean(1) if average_attn_weights else weights
            if unbatched:
                weights = weights.squeeze(0)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        out = self.out_proj(out.transpose(1, 2).flatten(2))
        if unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


def split_multihead_attention_(model: nn.Module) -> list[str]:
    """Replace every ``nn.MultiheadAttention`` of ``model`` by an equal ``SplitMultiheadAttention``, in
    place; returns their names. ``nn.TransformerEncoder``s holding them stop converting inputs to
    nested tensors (a fused path that needs the packed projection).

    Example:
        >>> layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
        >>> split_multihead_attention_(layer)
        ['self_attn']
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    for name in names:
        module = model.get_submodule(name)
        if name:
            set_submodule(model, name, SplitMultiheadAttention.from_multihead_attention(module))
        else:
            raise DeepslimError("the model is itself an nn.MultiheadAttention",
                                hint="wrap it in a module so its attention can be replaced")
    if names:
        for module in model.modules():
            if isinstance(module, nn.TransformerEncoder):
                module.use_nested_tensor = False
    return names


def head_counts(model: nn.Module) -> dict[str, int]:
    """``name -> number of heads`` of every attention module whose heads can be pruned (``nn.MultiheadAttention``
    included: it is split first)."""
    return {name: m.num_heads if isinstance(m, nn.MultiheadAttention) else getattr(m, layout_of(m).heads)
            for name, m in model.named_modules() if isinstance(m, nn.MultiheadAttention) or layout_of(m)}


def heads_to_remove(heads: int, ratio: float) -> int:
    """Heads a layer of ``heads`` loses at ``ratio``: rounded to nearest, at least one head kept.

    Example:
        >>> [heads_to_remove(4, r) for r in (0.1, 0.3, 0.5, 0.9)]
        [0, 1, 2, 3]
    """
    return min(math.floor(ratio * heads + 0.5), heads - 1)
