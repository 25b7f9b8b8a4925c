"""Fold BatchNorm into the conv or linear layer before it, exactly (in eval-mode semantics).

y = gamma * (W x + b - mean) / sqrt(var + eps) + beta  ==  W' x + b'
with W' = W * gamma / sqrt(var + eps) (per output channel) and b' = (b - mean) * gamma / sqrt(var + eps) + beta.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..core import set_submodule

_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def fold_bn_into(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """A new layer equal to ``bn(layer(x))`` for eval-mode BN."""
    fused = copy.deepcopy(layer)
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    factor = gamma / std
    shape = [-1] + [1] * (fused.weight.ndim - 1)
    fused.weight.copy_(fused.weight * factor.reshape(shape))
    bias = fused.bias if fused.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * factor + beta
    if fused.bias is None:
        fused.bias = nn.Parameter(new_bias)
    else:
        fused.bias.copy_(new_bias)
    return fused


def _conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(layer, bn) module-name pairs where the BN's only input is the layer's output, used nowhere else.

    Found by tracing with torch.fx; if the model cannot be traced, only adjacent children of
    ``nn.Sequential`` containers are paired (always safe: a Sequential feeds each child the last).
    """
    modules = dict(model.named_modules())
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:
        pairs = []
        for name, module in model.named_modules():
            if isinstance(module, nn.Sequential):
                kids = list(module.named_children())
                for (na, a), (nb, b) in zip(kids, kids[1:]):
                    pairs.append((f"{name}.{na}".lstrip("."), f"{name}.{nb}".lstrip(".")))
        return [(a, b) for a, b in pairs if isinstance(modules[a], _FOLDABLE) and isinstance(modules[b], _NORMS)]
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _NORMS):
            continue
        source = node.args[0] if node.args else None
        if (isinstance(source, torch.fx.Node) and source.op == "call_module"
                and isinstance(modules.get(source.target), _FOLDABLE) and len(source.users) == 1):
            pairs.append((source.target, node.target))
    return pairs



def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` (eval mode) with every BN that only follows a conv/linear folded into it.

    Folded BNs become ``nn.Identity``. Returns the copy and the names of the folded BNs; the
    input model is not modified.

    Example:
        >>> import deepslim
        >>> folded, names = fold_batchnorm(deepslim.create_model("resnet8"))
        >>> names[:2]
        ['stem.1', 'stages.0.0.bn1']
    """
    model = copy.deepcopy(model).eval()
    modules = dict(model.named_modules())
    folded = []
    for layer_name, bn_name in _conv_bn_pairs(model):
        layer, bn = modules[layer_name], modules[bn_name]
        if bn.num_features != layer.weight.shape[0] or not bn.track_running_stats:
            continue
        set_submodule(model, layer_name, fold_bn_into(layer, bn))
        set_submodule(model, bn_name, nn.Identity())
        folded.append(bn_name)
    return model, folded
