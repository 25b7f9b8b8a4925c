"""Tied weights: one Parameter (or buffer) reachable under several names.

Saving rebuilds every module from its own record and Torch-Pruning slices every user of a
weight into its own new Parameter; both lose the tie. ``tied_tensors`` records the ties by name
beforehand and ``retie`` makes each alias the very same tensor as its source again.

Example:
    >>> from torch import nn
    >>> pair = nn.ModuleDict({"embed": nn.Embedding(10, 4), "head": nn.Linear(4, 10, bias=False)})
    >>> pair["head"].weight = pair["embed"].weight
    >>> tied_tensors(pair)
    {'head.weight': 'embed.weight'}
    >>> pair["head"].weight = nn.Parameter(pair["embed"].weight.detach().clone())
    >>> retie(pair, {"head.weight": "embed.weight"}); pair["head"].weight is pair["embed"].weight
    True
"""

from __future__ import annotations

from torch import nn


def tied_tensors(model: nn.Module) -> dict[str, str]:
    """Parameters and buffers reachable under several names, as ``{alias: first name}``."""
    first: dict[int, str] = {}
    ties = {}
    named = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    for name, tensor in named:
        if id(tensor) in first:
            ties[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
    return ties


def tensor_owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The module holding the parameter or buffer ``name`` directly, and its attribute name (KeyError if none)."""
    owner_name, _, attr = name.rpartition(".")
    owner = model.get_submodule(owner_name)
    if attr not in owner._parameters and attr not in owner._buffers:
        raise KeyError(name)
    return owner, attr


def retie(model: nn.Module, ties: dict[str, str]) -> None:
    """Make every alias in ``ties`` the very same Parameter (or buffer) as its source again.

    Raises ``KeyError``/``AttributeError`` when the model lacks one of the names."""
    for alias, source in ties.items():
        holder, attr = tensor_owner(model, source)
        owner, alias_attr = tensor_owner(model, alias)
        if attr in holder._parameters:
            owner._parameters[alias_attr] = holder._parameters[attr]
        else:
            owner._buffers[alias_attr] = holder._buffers[attr]
