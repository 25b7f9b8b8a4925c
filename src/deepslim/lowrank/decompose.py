"""The factorizations themselves: a trained layer in, an exact-at-full-rank chain of smaller layers out.

Every function returns an ``nn.Sequential`` of ordinary torch layers (so the result saves,
reloads and exports like any model) whose product equals the truncated decomposition:

- ``factorize_linear``: W ~ (U S^1/2)(S^1/2 V^T), two Linear layers (in -> r -> out).
- ``factorize_conv_channel``: the same SVD of the conv's (out, in*k*k) matrix: a k x k conv
  with r filters, then a 1 x 1 conv (Zhang et al. 2015's channel decomposition, data-free).
- ``factorize_conv_spatial``: Jaderberg et al. 2014 scheme 2: SVD of the weight rearranged
  as (in*kh, out*kw), giving a kh x 1 conv with r filters then a 1 x kw conv.
- ``factorize_conv_tucker``: Tucker-2 on the output and input modes (HOSVD refined by HOOI):
  1 x 1 (in -> r_in), k x k core (r_in -> r_out), 1 x 1 (r_out -> out).
"""

from __future__ import annotations

import torch
from torch import nn

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _svd(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(matrix.detach().double(), full_matrices=False)
    return u, s, vh


def singular_values(layer: nn.Module, method: str) -> list[torch.Tensor]:
    """Singular values that decide the rank: one list for SVD-style methods, two for Tucker."""
    w = layer.weight.detach().double()
    if isinstance(layer, nn.Linear) or method == "svd":
        return [torch.linalg.svdvals(w.reshape(w.shape[0], -1))]
    if method == "spatial":
        return [torch.linalg.svdvals(_spatial_matrix(w))]
    return [torch.linalg.svdvals(w.reshape(w.shape[0], -1)),
            torch.linalg.svdvals(w.transpose(0, 1).reshape(w.shape[1], -1))]


def _split(u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]


def factorize_linear(layer: nn.Linear, rank: int) -> nn.Sequential:
    """Two Linear layers (in -> rank -> out) equal to the rank-``rank`` truncated SVD of ``layer``.

    Example:
        >>> layer = nn.Linear(20, 10)
        >>> x = torch.randn(3, 20)
        >>> bool(torch.allclose(factorize_linear(layer, 10)(x), layer(x), atol=1e-5))
        True
    """
    left, right = _split(*_svd(layer.weight), rank)
    first = nn.Linear(layer.in_features, rank, bias=False)
    second = nn.Linear(rank, layer.out_features, bias=layer.bias is not None)
    _assign(first.weight, right)
    _assign(second.weight, left)
    if layer.bias is not None:
        _assign(second.bias, layer.bias)
    return nn.Sequential(first, second)


def _conv_like(conv: nn.Module, in_channels: int, out_channels: int, kernel, stride, padding, dilation,
               bias: bool) -> nn.Module:
    return type(conv)(in_channels, out_channels, kernel, stride=stride, padding=padding, dilation=dilation,
                      bias=bias, padding_mode=conv.padding_mode)


def _ones(conv: nn.Module) -> tuple[int, ...]:
    return (1,) * len(conv.kernel_size)


def _zeros(conv: nn.Module):
    return "valid" if isinstance(conv.padding, str) else (0,) * len(conv.kernel_size)


def factorize_conv_channel(conv: nn.Module, rank: int) -> nn.Sequential:
    """A k x k conv with ``rank`` filters, then a 1 x 1 conv: the truncated SVD of the conv's
    (out, in * prod(kernel)) matrix.

    Example:
        >>> conv = nn.Conv2d(8, 16, 3, padding=1)
        >>> x = torch.randn(1, 8, 6, 6)
        >>> bool(torch.allclose(factorize_conv_channel(conv, 16)(x), conv(x), atol=1e-5))
        True
    """
    w = conv.weight
    left, right = _split(*_svd(w.reshape(w.shape[0], -1)), rank)
    first = _conv_like(conv, conv.in_channels, rank, conv.kernel_size, conv.stride, conv.padding, conv.dilation, False)
    second = _conv_like(conv, rank, conv.out_channels, _ones(conv), _ones(conv), _zeros(conv), _ones(conv),
                        conv.bias is not None)
    _assign(first.weight, right.reshape(rank, *w.shape[1:]))
    _assign(second.weight, left.reshape(conv.out_channels, rank, *_ones(conv)))
    if conv.bias is not None:
        _assign(second.bias, conv.bias)
    return nn.Sequential(first, second)


def _spatial_matrix(w: torch.Tensor) -> torch.Tensor:
    """(out, in, kh, kw) -> (in * kh, out * kw): rank-1 terms are vertical x horizontal filters."""
    n, c, kh, kw = w.shape
    return w.permute(1, 2, 0, 3).reshape(c * kh, n * kw)


def factorize_conv_spatial(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """A kh x 1 conv with ``rank`` filters, then a 1 x kw conv (Jaderberg et al. 2014, scheme 2).

    Stride, padding and dilation are split by axis: the vertical conv takes the vertical
    ones, the horizontal conv the horizontal ones, so the chain computes the same function.

    Example:
        >>> conv = nn.Conv2d(4, 6, 3, padding=1, stride=2)
        >>> x = torch.randn(1, 4, 9, 9)
        >>> bool(torch.allclose(factorize_conv_spatial(conv, 12)(x), conv(x), atol=1e-5))
        True
    """
    w = conv.weight
    n, c, kh, kw = w.shape
    left, right = _split(*_svd(_spatial_matrix(w)), rank)
    vertical = left.reshape(c, kh, rank).permute(2, 0, 1).unsqueeze(-1)       # (r, c, kh, 1)
    horizontal = right.reshape(rank, n, kw).permute(1, 0, 2).unsqueeze(2)     # (n, r, 1, kw)
    pad = conv.padding
    pad_v, pad_h = (pad, pad) if isinstance(pad, str) else ((pad[0], 0), (0, pad[1]))
    first = _conv_like(conv, c, rank, (kh, 1), (conv.stride[0], 1), pad_v, (conv.dilation[0], 1), False)
    second = _conv_like(conv, rank, n, (1, kw), (1, conv.stride[1]), pad_h, (1, conv.dilation[1]),
                        conv.bias is not None)
    _assign(first.weight, vertical)
    _assign(second.weight, horizontal)
    if conv.bias is not None:
        _assign(second.bias, conv.bias)
    return nn.Sequential(first, second)


def tucker2_factors(w: torch.Tensor, rank_out: int, rank_in: int,
                    iterations: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(U_out, core, U_in) with W ~ core x_0 U_out x_1 U_in: HOSVD start, then HOOI sweeps."""
    w = w.detach().double()
    n, c = w.shape[:2]
    u_out = _svd(w.reshape(n, -1))[0][:, :rank_out]
    u_in = _svd(w.transpose(0, 1).reshape(c, -1))[0][:, :rank_in]
    for _ in range(iterations):
        projected = torch.einsum("nc...,nr->rc...", w, u_out)           # W x_0 U_out^T
        u_in = _svd(projected.transpose(0, 1).reshape(c, -1))[0][:, :rank_in]
        projected = torch.einsum("nc...,cs->ns...", w, u_in)            # W x_1 U_in^T
        u_out = _svd(projected.reshape(n, -1))[0][:, :rank_out]
    core = torch.einsum("nc...,nr,cs->rs...", w, u_out, u_in)
    return u_out, core, u_in


def factorize_conv_tucker(conv: nn.Module, rank_out: int, rank_in: int, iterations: int = 10) -> nn.Sequential:
    """1 x 1 (in -> rank_in), k x k core (rank_in -> rank_out), 1 x 1 (rank_out -> out).

    Example:
        >>> conv = nn.Conv2d(8, 16, 3, padding=1)
        >>> x = torch.randn(1, 8, 6, 6)
        >>> bool(torch.allclose(factorize_conv_tucker(conv, 16, 8)(x), conv(x), atol=1e-5))
        True
    """
    u_out, core, u_in = tucker2_factors(conv.weight, rank_out, rank_in, iterations)
    ones = _ones(conv)
    first = _conv_like(conv, conv.in_channels, rank_in, ones, ones, _zeros(conv), ones, False)
    middle = _conv_like(conv, rank_in, rank_out, conv.kernel_size, conv.stride, conv.padding, conv.dilation, False)
    last = _conv_like(conv, rank_out, conv.out_channels, ones, ones, _zeros(conv), ones, conv.bias is not None)
    _assign(first.weight, u_in.T.reshape(rank_in, conv.in_channels, *ones))
    _assign(middle.weight, core)
    _assign(last.weight, u_out.reshape(conv.out_channels, rank_out, *ones))
    if conv.bias is not None:
        _assign(last.bias, conv.bias)
    return nn.Sequential(first, middle, last)


@torch.no_grad()
def _assign(param: torch.Tensor, value: torch.Tensor) -> None:
    param.copy_(value.to(param.dtype).reshape(param.shape))
