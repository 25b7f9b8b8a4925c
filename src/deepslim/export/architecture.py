"""Describe a module tree as JSON and rebuild it, without pickling code.

Every module is recorded as its class (``torch.nn.*`` or ``deepslim.*``), the arguments
that rebuild it and its children. Arguments come from ``SerializableModule.init_args``
for deepslim's modules (current attribute values win, so a pruned attention's
``num_heads`` is the pruned one) and from attributes named like the constructor's
parameters for ``torch.nn`` layers (``Conv2d.out_channels`` ...). Because every child is
rebuilt from its own record, a model whose layers were pruned (new widths) or
factorized (a conv replaced by a Sequential of two) comes back exactly.
"""

from __future__ import annotations

import importlib
import inspect

import torch
from torch import nn

from ..core import DeepslimError, SerializableModule

TRUSTED_PREFIXES = ("torch.nn.", "deepslim.")
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_SKIP_PARAMS = {"self", "device", "dtype"}


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        items = [_jsonable(v) for v in value]
        return None if any(i is _NOT_JSON for i in items) else items
    return _NOT_JSON


_NOT_JSON = object()


def _torch_args(module: nn.Module) -> dict:
    args = {}
    for name, param in inspect.signature(type(module).__init__).parameters.items():
        if name in _SKIP_PARAMS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if not hasattr(module, name):
            continue
        value = getattr(module, name)
        if isinstance(value, torch.Tensor) or (value is None and name == "bias"):
            value = value is not None  # e.g. Linear(bias=True) stores the bias tensor
        converted = _jsonable(value)
        if converted is _NOT_JSON:
            continue
        args[name] = converted
    return args


def _deepslim_args(module: SerializableModule) -> dict:
    args = {}
    for name, recorded in getattr(module, "init_args", {}).items():
        current = module.__dict__.get(name, recorded)  # plain attributes only, never submodules
        value = _jsonable(current)
        if value is _NOT_JSON:
            value = _jsonable(recorded)
        if value is _NOT_JSON:
            raise DeepslimError(f"{type(module).__name__} argument '{name}' is not JSON-serialisable")
        args[name] = value
    return args


def class_path(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def module_to_spec(module: nn.Module) -> dict:
    """JSON-friendly description of ``module`` and all its children.

    Example:
        >>> module_to_spec(nn.Linear(4, 2))["args"]
        {'in_features': 4, 'out_features': 2, 'bias': True}
    """
    if isinstance(module, _CONTAINERS):
        args = {}
    elif isinstance(module, SerializableModule):
        args = _deepslim_args(module)
    else:
        args = _torch_args(module)
    spec = {"class": class_path(module), "args": args,
            "children": {name: module_to_spec(child) for name, child in module.named_children()}}
    if not class_path(module).startswith(TRUSTED_PREFIXES):
        attrs = _plain_attributes(module, skip=args)
        if attrs:
            spec["attrs"] = attrs
    return spec


def _plain_attributes(module: nn.Module, skip: dict) -> dict:
    """A foreign module's scalar attributes (e.g. a pruned Hugging Face attention's ``num_attention_heads``):
    its constructor may not describe them once a technique has changed them, so they are put back."""
    return {name: value for name, value in vars(module).items()
            if not name.startswith("_") and name != "training" and name not in skip
            and (value is None or isinstance(value, (bool, int, float, str)))}


def resolve_class(path: str, allow: tuple[str, ...] = ()) -> type[nn.Module]:
    """Import a module class named in an architecture file, only from trusted packages.

    ``allow`` adds packages or modules (``("__main__",)`` for classes defined in the user's script,
    ``("my_models",)`` for a package of theirs): their code runs when the model is rebuilt.
    """
    if isinstance(allow, str):
        allow = (allow,)
    prefixes = TRUSTED_PREFIXES + tuple(p.rstrip(".") + "." for p in allow)
    if not path.startswith(prefixes):
        top = path.split(".")[0]
        raise DeepslimError(f"the architecture names class '{path}', outside torch.nn and deepslim and not in "
                            "allow_modules",
                            hint=f"pass allow_modules=('{top}',) to deepslim.save and deepslim.load if you trust "
                                 f"that code (it runs when the model is rebuilt)")
    module_name, _, qualname = path.rpartition(".")
    obj = None
    while module_name:  # the qualname may contain dots (nested classes)
        try:
            obj = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            qualname = f"{head}.{qualname}"
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        obj = None
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise DeepslimError(f"the architecture names class '{path}', which this version of deepslim/torch lacks",
                            hint="load it with the deepslim version that saved it")
    return obj


def spec_to_module(spec: dict, allow: tuple[str, ...] = (), built: nn.Module | None = None) -> nn.Module:
    """Rebuild a module (with freshly initialised weights) from ``module_to_spec`` output.

    ``built`` is the child the parent's constructor made in this place. A foreign module whose
    constructor takes what JSON cannot hold (a Hugging Face ``BertModel(config)``, whose layers
    each take the config) is that child, kept, with its recorded scalar attributes put back; its
    own children are still rebuilt from their records, so pruned widths come back.
    """
    try:
        cls = resolve_class(spec["class"], allow)
        args, children = spec.get("args", {}), spec.get("children", {})
    except (KeyError, TypeError, AttributeError) as exc:
        raise DeepslimError(f"architecture entry is malformed: {exc}") from exc
    try:
        module = cls() if issubclass(cls, _CONTAINERS) else cls(**args)
    except (TypeError, ValueError, AttributeError) as exc:
        if type(built) is not cls or cls.__module__.startswith(("torch.", "deepslim.")):
            raise DeepslimError(f"cannot rebuild {spec['class']}({args}): {exc}",
                                hint="deepslim.save records a module's constructor arguments from its attributes of "
                                     "the same name (JSON values: numbers, strings, lists); keep each argument as such "
                                     "an attribute, or subclass deepslim.core.SerializableModule") from exc
        module = built
    for name, value in spec.get("attrs", {}).items():
        setattr(module, name, value)
    # what the constructor built in each place; an empty container's are those of the one it replaces
    made = dict(built._modules if issubclass(cls, _CONTAINERS) and type(built) is cls else module._modules)
    for name in list(module._modules):
        if name not in children:
            del module._modules[name]
    for name, child_spec in children.items():
        module._modules[name] = spec_to_module(child_spec, allow, made.get(name))
    return module


def adopt_saved_shapes(model: nn.Module, shapes: dict[str, tuple]) -> None:
    """Resize tensors that modules other than ``torch.nn`` layers own directly (e.g. a ViT's
    ``pos_embed``, or a user model's buffer) to saved shapes.

    Such tensors are not described by constructor arguments, so after pruning the embedding
    width they would be rebuilt at the old size. Layers from ``torch.nn`` are never resized
    here: their shapes follow from their recorded arguments.
    """
    modules = dict(model.named_modules())
    for key, tensor in model.state_dict(keep_vars=True).items():
        want = shapes.get(key)
        if want is None or tuple(tensor.shape) == tuple(want):
            continue
        owner_name, _, attr = key.rpartition(".")
        owner = modules.get(owner_name)
        # torch.nn layers rebuild at their recorded sizes; any other module (ours, or an allow-listed
        # user class) may own tensors that pruning resized, e.g. a user's positional table.
        if owner is None or type(owner).__module__.startswith("torch.nn."):
            continue
        if attr in owner._parameters:
            owner._parameters[attr] = nn.Parameter(torch.empty(want, dtype=tensor.dtype),
                                                   requires_grad=tensor.requires_grad)
        elif attr in owner._buffers:
            owner._buffers[attr] = torch.empty(want, dtype=tensor.dtype)


def tied_tensors(model: nn.Module) -> dict[str, str]:
    """Parameters and buffers reachable under several names (tied weights), as ``{alias: first name}``.

    Rebuilding each module from its own record gives every name its own tensor, so the ties are
    recorded beside the tree (``architecture.json``'s ``tied``) and restored by ``retie``.

    Example:
        >>> pair = nn.ModuleDict({"embed": nn.Embedding(10, 4), "head": nn.Linear(4, 10, bias=False)})
        >>> pair["head"].weight = pair["embed"].weight
        >>> tied_tensors(pair)
        {'head.weight': 'embed.weight'}
    """
    first: dict[int, str] = {}
    ties = {}
    named = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    for name, tensor in named:
        if id(tensor) in first:
            ties[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
    return ties


def retie(model: nn.Module, ties: dict[str, str]) -> None:
    """Make every alias in ``ties`` the very same Parameter (or buffer) as its source again."""
    for alias, source in ties.items():
        try:
            holder, attr = _owner(model, source)
            owner, alias_attr = _owner(model, alias)
        except (AttributeError, KeyError) as exc:
            raise DeepslimError(f"architecture.json ties '{alias}' to '{source}', which the model lacks",
                                hint="the artifact's files come from different models; save it again") from exc
        if attr in holder._parameters:
            owner._parameters[alias_attr] = holder._parameters[attr]
        else:
            owner._buffers[alias_attr] = holder._buffers[attr]


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    owner_name, _, attr = name.rpartition(".")
    owner = model.get_submodule(owner_name)
    if attr not in owner._parameters and attr not in owner._buffers:
        raise KeyError(name)
    return owner, attr
