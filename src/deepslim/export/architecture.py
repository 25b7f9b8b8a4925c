"""Describe a module tree as JSON and rebuild it, without pickling code.

Every module is recorded as its class (``torch.nn.*`` or ``deepslim.*``), the arguments
that rebuild it and its children. Arguments come from ``SerializableModule.init_args``
for deepslim's modules (current attribute values win, so a pruned attention's
``num_heads`` is the pruned one) and from attributes named like the constructor's
parameters for ``torch.nn`` layers (``Conv2d.out_channels`` ...). Because every child is
rebuilt from its own record, a model whose layers were pruned (new widths) or
factorized (a conv replaced by a Sequential of two) comes back exactly.

Classes outside ``torch.nn`` and deepslim are imported only from packages the caller names in
``allow_modules``, except a child of exactly the class its parent's constructor built in that
place: nothing is imported from the file for it (deepslim's ``SentenceEmbedder`` builds a
``transformers`` BERT), and a file naming any other class there is refused as before.

Portability across torch versions: a ``torch.nn`` layer records only the arguments that differ
from its constructor's defaults, so an argument a newer torch added (``BatchNorm2d(bias=True)``)
is absent from files that do not use it. A file that still carries an argument the running torch
lacks loads if the value is that argument's default (``KNOWN_DEFAULTS``, with a warning), and is
refused otherwise, naming the argument and both torch versions.
"""

from __future__ import annotations

import importlib
import inspect
import logging

import torch
from torch import nn

from ..core import DeepslimError, SerializableModule
from ..core.ties import retie as retie_tensors

TRUSTED_PREFIXES = ("torch.nn.", "deepslim.")
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_SKIP_PARAMS = {"self", "device", "dtype"}
log = logging.getLogger(__name__)

# Constructor arguments torch added after the oldest torch deepslim supports (pyproject), with the
# default they have in the torch that added them. An older torch lacks the argument; a file recording
# exactly this default (written before defaults were omitted) still means the older torch's behaviour.
# Keys are class names looked up along the running class's MRO (``_NormBase`` is torch's base of
# BatchNorm*, InstanceNorm* and SyncBatchNorm).
KNOWN_DEFAULTS: dict[str, dict[str, object]] = {
    "_NormBase": {"bias": True},   # keyword-only, new after torch 2.11
    "GroupNorm": {"bias": True},   # keyword-only in 2.13 like the norms' above; assumed to have come with them
}


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        items = [_jsonable(v) for v in value]
        return None if any(i is _NOT_JSON for i in items) else items
    return _NOT_JSON


_NOT_JSON = object()


def _torch_args(module: nn.Module) -> dict:
    """Constructor arguments of a non-deepslim module that differ from their defaults.

    Example:
        >>> _torch_args(nn.Conv2d(3, 8, 3, bias=False))
        {'in_channels': 3, 'out_channels': 8, 'kernel_size': [3, 3], 'bias': False}
    """
    args = {}
    normalises_tuples = type(module).__module__.startswith("torch.nn.")
    for name, param in inspect.signature(type(module).__init__).parameters.items():
        if name in _SKIP_PARAMS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if not hasattr(module, name):
            continue
        value = getattr(module, name)
        if value is None and name == "bias" and _affine(module) is False:
            continue  # a norm without affine parameters has no bias whatever `bias` says: nothing to record
        if isinstance(value, torch.Tensor) or (value is None and name == "bias"):
            value = value is not None  # e.g. Linear(bias=True) stores the bias tensor
        converted = _jsonable(value)
        if converted is _NOT_JSON:
            continue
        # Defaults are left out so that a file never names an argument it does not need: a torch
        # that lacks an argument added later (BatchNorm's `bias`) can still rebuild the layer.
        if param.default is not param.empty and _is_default(converted, param.default, normalises_tuples):
            continue
        args[name] = converted
    return args


def _affine(module: nn.Module):
    """``False`` for a norm layer built without affine parameters, else ``None`` (not a norm / unknown)."""
    for flag in ("affine", "elementwise_affine"):
        if getattr(module, flag, None) is False:
            return False
    return None


def _is_default(value, default, normalises_tuples: bool) -> bool:
    default = _jsonable(default)
    if default is _NOT_JSON:
        return False
    if _same_kind(value, default):
        return value == default
    # torch.nn layers expand a scalar default to a tuple (Conv2d stride=1 -> (1, 1)): that tuple is the default
    return (normalises_tuples and isinstance(value, list) and bool(value)
            and all(_same_kind(v, default) and v == default for v in value))


def _same_kind(a, b) -> bool:
    numbers = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)]
    return all(numbers) or type(a) is type(b)  # bool is an int to Python, but True is not the argument 1


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
        >>> module_to_spec(nn.Linear(4, 2, bias=False))["args"]   # bias=True, the default, is left out
        {'in_features': 4, 'out_features': 2, 'bias': False}
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


def spec_to_module(spec: dict, allow: tuple[str, ...] = (), built: nn.Module | None = None, *,
                   torch_version: str | None = None) -> nn.Module:
    """Rebuild a module (with freshly initialised weights) from ``module_to_spec`` output.

    ``built`` is the child the parent's constructor made in this place. A foreign module whose
    constructor takes what JSON cannot hold (a Hugging Face ``BertModel(config)``, whose layers
    each take the config) is that child, kept, with its recorded scalar attributes put back; its
    own children are still rebuilt from their records, so pruned widths come back.
    ``torch_version`` is the torch that wrote the spec (metadata ``versions.torch``), named when
    an argument this torch lacks cannot be dropped.

    Example:
        >>> spec_to_module({"class": "torch.nn.modules.linear.Linear", "args": {"in_features": 4, "out_features": 2}})
        Linear(in_features=4, out_features=2, bias=True)
    """
    return _rebuild(spec, allow, built, {"writer": torch_version, "warned": set()})


def _rebuild(spec: dict, allow: tuple[str, ...], built: nn.Module | None, context: dict) -> nn.Module:
    try:
        # A child of the class its (trusted) parent's constructor built here needs no import from the file
        # and no allow_modules: e.g. the transformers BERT inside deepslim's SentenceEmbedder.
        own = built is not None and class_path(built) == spec["class"]
        cls = type(built) if own else resolve_class(spec["class"], allow)
        args, children = spec.get("args", {}), spec.get("children", {})
    except (KeyError, TypeError, AttributeError) as exc:
        raise DeepslimError(f"architecture entry is malformed: {exc}") from exc
    if cls.__module__.startswith("torch.nn.") and isinstance(args, dict):
        args = _accepted_args(cls, args, context)
    try:
        module = cls() if issubclass(cls, _CONTAINERS) else cls(**args)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # KeyError: e.g. an unknown activation name
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
        module._modules[name] = _rebuild(child_spec, allow, made.get(name), context)
    return module


def _accepted_args(cls: type[nn.Module], args: dict, context: dict) -> dict:
    """``args`` without those the running torch's ``cls`` does not accept, when each is a known default.

    A file written by another torch may name an argument this torch lacks (older deepslim recorded
    every argument, e.g. ``BatchNorm2d(bias=True)`` from torch 2.13, unknown to torch 2.11). At its
    default it asks for nothing this torch does not already do, so it is dropped with a warning.
    """
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return args  # takes any keyword: nothing to check here
    unknown = [name for name in args if name not in parameters]
    if not unknown:
        return args
    writer = f"torch {context['writer']}" if context["writer"] else "another torch version"
    defaults = {}
    for base in reversed(cls.__mro__):  # the most derived class's entry wins
        defaults.update(KNOWN_DEFAULTS.get(base.__name__, {}))
    for name in unknown:
        value = args[name]
        if name == "bias" and _recorded_affine(parameters, args) is False:
            continue  # a norm without affine parameters has no bias: older files recorded bias=false for it
        if name not in defaults or not _is_default(value, defaults[name], normalises_tuples=False):
            known = f"its default is {defaults[name]!r}" if name in defaults else "its default is not known here"
            raise DeepslimError(f"the architecture gives {cls.__name__} argument '{name}'={value!r}, written by "
                                f"{writer}; torch {torch.__version__} does not accept '{name}' ({known})",
                                hint=f"load it with {writer}, which wrote it, or another torch whose "
                                     f"{cls.__name__} takes '{name}'")
        if (cls.__name__, name) not in context["warned"]:  # once per layer type, not once per layer
            context["warned"].add((cls.__name__, name))
            log.warning("dropping %s argument '%s'=%r, written by %s: torch %s does not accept it, and it is "
                        "that argument's default", cls.__name__, name, value, writer, torch.__version__)
    return {k: v for k, v in args.items() if k not in unknown}


def _recorded_affine(parameters, args: dict):
    """The record's ``affine`` (or ``elementwise_affine``), else the constructor's default; ``None`` if neither."""
    for flag in ("affine", "elementwise_affine"):
        if flag in args:
            return args[flag]
        if flag in parameters and parameters[flag].default is not inspect.Parameter.empty:
            return parameters[flag].default
    return None


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


def retie(model: nn.Module, ties: dict[str, str]) -> None:
    """``core.ties.retie`` for a loaded artifact, with an error that says what went wrong."""
    try:
        retie_tensors(model, ties)
    except (AttributeError, KeyError) as exc:
        raise DeepslimError(f"architecture.json ties tensors the model lacks ({exc})",
                            hint="the artifact's files come from different models; save it again") from exc
