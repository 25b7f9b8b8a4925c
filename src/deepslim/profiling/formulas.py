"""MAC formulas for ops PyTorch's ``FlopCounterMode`` does not count.

FlopCounterMode's registry counts the matmul/conv family as FLOPs = 2 x MACs. On CPU it
misses scaled-dot-product attention (dispatched to ``_scaled_dot_product_flash_attention_for_cpu``)
LSTM layers (dispatched to the fused ``mkldnn_rnn_layer``) and ``nn.MultiheadAttention``'s
inference fast path (``_native_multi_head_attention``). These formulas fill the
gap with the same convention (FLOPs = 2 x MACs).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import sdpa_flop_count

aten = torch.ops.aten


def _shape(t):
    return tuple(t.shape) if isinstance(t, torch.Tensor) else t


def cpu_sdpa_flop(query, key, value, *args, out_val=None, **kwargs) -> int:
    """QK^T and AV: 2 x (b*h*s_q*s_k*d_qk + b*h*s_q*s_k*d_v) FLOPs."""
    return sdpa_flop_count(_shape(query), _shape(key), _shape(value))


def mkldnn_rnn_layer_flop(input, weight0, weight1, *args, out_val=None, **kwargs) -> int:
    """One fused RNN/LSTM/GRU layer: every time step multiplies the input by W_ih and the state by W_hh."""
    input_size = weight0.shape[1]
    steps_times_batch = input.numel() // input_size
    return 2 * steps_times_batch * (weight0.numel() + weight1.numel())


def native_mha_flop(query, key, value, embed_dim, num_heads, *args, out_val=None, **kwargs) -> int:
    """nn.MultiheadAttention's inference fast path: Q/K/V and output projections, QK^T and AV."""
    b, lq, e = query.shape[0], query.shape[-2], embed_dim
    s = key.shape[-2]
    projections = b * lq * e * e + 2 * b * s * e * e + b * lq * e * e
    attention = 2 * b * lq * s * e
    return 2 * (projections + attention)


def _raw(fn):
    fn._get_raw = True  # FlopCounterMode passes tensors, not shapes, to raw formulas
    return fn


EXTRA_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _raw(cpu_sdpa_flop),
    aten.mkldnn_rnn_layer: _raw(mkldnn_rnn_layer_flop),
    aten._native_multi_head_attention: _raw(native_mha_flop),
}
