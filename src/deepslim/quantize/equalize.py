"""Cross-layer equalization (Nagel et al., 2019, "Data-Free Quantization").

For a conv/linear A followed (through a ReLU) by a conv/linear B, scaling A's output
channel i by 1/s_i and B's matching input channel by s_i leaves the network's function
unchanged (ReLU and max/avg pooling are positively homogeneous; ReLU6 is not, so pairs
around it are left alone) and, with s_i = sqrt(r1_i * r2_i) / r2_i, gives
both weight ranges the value sqrt(r1_i * r2_i): per-channel ranges become even, so
per-tensor and low-bit weight quantization lose less.
"""

from __future__ import annotations

import torch
from torch import nn

_LAYERS = (nn.Conv2d, nn.Linear)
# Modules that commute with a positive per-channel scale (so may sit between A and B).
_PASS = (nn.Identity, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_RELU = (nn.ReLU,)


def _is_relu(node, modules) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), _RELU)
    return node.op == "call_function" and node.target in (torch.relu, torch.nn.functional.relu)


def _skip(node, modules):
    while node.op == "call_module" and isinstance(modules.get(node.target), _PASS) and len(node.users) == 1:
        node = next(iter(node.users))
    return node


def equalization_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(A, B) layer names where A's output reaches only B, through exactly one ReLU."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:
        return []
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _LAYERS) or len(node.users) != 1:
            continue
        relu = _skip(next(iter(node.users)), modules)
        if not _is_relu(relu, modules) or len(relu.users) != 1:
            continue
        nxt = _skip(next(iter(relu.users)), modules)
        if nxt.op == "call_module" and isinstance(modules.get(nxt.target), _LAYERS):
            pairs.append((node.target, nxt.target))
    return pairs


def _input_axis_view(layer: nn.Module) -> torch.Tensor | None:
    """B's weight arranged (in_channels, -1), or None for grouped convs we do not handle."""
    w = layer.weight
    if isinstance(layer, nn.Linear) or layer.groups == 1:
        return w.transpose(0, 1).reshape(w.shape[1], -1)
    if layer.groups == layer.in_channels == layer.out_channels:  # depthwise: channel i is filter i
        return w.reshape(w.shape[0], -1)
    return None


@torch.no_grad()
def equalize_(model: nn.Module, iterations: int = 2) -> list[tuple[str, str]]:
    """Equalize every (layer, ReLU, layer) pair in place; returns the pairs. Output is unchanged.

    Run after BN folding. Example:
        >>> import deepslim
        >>> from deepslim.quantize import fold_batchnorm
        >>> model, _ = fold_batchnorm(deepslim.create_model("fmnist-cnn"))
        >>> len(equalize_(model)) > 0
        True
    """
    modules = dict(model.named_modules())
    pairs = equalization_pairs(model)
    for _ in range(iterations):
        for a_name, b_name in pairs:
            a, b = modules[a_name], modules[b_name]
            b_view = _input_axis_view(b)
            if b_view is None or b_view.shape[0] != a.weight.shape[0]:
                continue
            r1 = a.weight.reshape(a.weight.shape[0], -1).abs().amax(dim=1)
            r2 = b_view.abs().amax(dim=1)
            ok = (r1 > 0) & (r2 > 0)
            s = torch.ones_like(r1)
            s[ok] = torch.sqrt(r1[ok] * r2[ok]) / r2[ok]
            a.weight.div_(s.reshape([-1] + [1] * (a.weight.ndim - 1)))
            if a.bias is not None:
                a.bias.div_(s)
            if isinstance(b, nn.Linear) or b.groups == 1:
                b.weight.mul_(s.reshape([1, -1] + [1] * (b.weight.ndim - 2)))
            else:
                b.weight.mul_(s.reshape([-1] + [1] * (b.weight.ndim - 1)))
    return pairs
