"""Analytic MACs of a layer before and after factorization, from the shapes one forward pass saw.

Counted the way ``deepslim.profile`` counts (docs/profiling.md): one MAC per multiply-add of
a conv or linear, biases not counted. Tests check these formulas against the profiler.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..core import eval_mode
from ..core.inputs import call_model


def record_shapes(model: nn.Module, example_inputs, names) -> dict[str, tuple]:
    """``name -> (input shape, output shape)`` for the named layers, from one forward pass on
    ``example_inputs`` (a tensor, a tuple of positional inputs or a dict of keyword inputs)."""
    modules = dict(model.named_modules())
    shapes, hooks = {}, []
    for name in names:
        def hook(module, inputs, output, name=name):
            shapes.setdefault(name, (tuple(inputs[0].shape), tuple(output.shape)))
        hooks.append(modules[name].register_forward_hook(hook))
    try:
        with eval_mode(model), torch.no_grad():
            call_model(model, example_inputs)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def layer_macs(layer: nn.Module, in_shape: tuple, out_shape: tuple) -> int:
    """MACs of the unfactorized layer."""
    if isinstance(layer, nn.Linear):
        return math.prod(out_shape) * layer.in_features
    return math.prod(out_shape) * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)


def factorized_macs(layer: nn.Module, method: str, rank, in_shape: tuple, out_shape: tuple) -> int:
    """MACs of the chain ``method`` builds at ``rank`` (an int; ``(r_out, r_in)`` for Tucker).

    Example:
        >>> factorized_macs(nn.Linear(100, 50), "svd", 10, (1, 100), (1, 50))
        1500
    """
    if isinstance(layer, nn.Linear):
        positions = math.prod(out_shape) // layer.out_features
        return positions * rank * (layer.in_features + layer.out_features)
    out_positions = math.prod(out_shape[2:]) * out_shape[0]
    kernel = math.prod(layer.kernel_size)
    n, c = layer.out_channels, layer.in_channels
    if method == "svd":
        return out_positions * rank * (c * kernel + n)
    if method == "spatial":
        kh, kw = layer.kernel_size
        middle_positions = out_shape[0] * out_shape[2] * in_shape[3]  # vertical conv keeps the input width
        return middle_positions * rank * c * kh + out_positions * n * rank * kw
    rank_out, rank_in = rank
    in_positions = math.prod(in_shape[2:]) * in_shape[0]
    return in_positions * rank_in * c + out_positions * rank_out * rank_in * kernel + out_positions * n * rank_out
