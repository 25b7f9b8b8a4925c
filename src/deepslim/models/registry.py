"""The model registry: ``create_model(name, **kwargs)`` and ``list_models()``."""

from __future__ import annotations

import inspect

from torch import nn

from ..core import DeepslimError, Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


def list_models() -> list[str]:
    """Names of every registered model.

    Example:
        >>> "resnet" in list_models()
        True
    """
    return MODELS.names()


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model. Common kwargs: ``in_channels``, ``num_classes``.

    The returned module carries ``deepslim_model = {"name": ..., "kwargs": ...}`` so
    artifacts can record where it came from.

    Example:
        >>> model = create_model("lenet5", in_channels=1, num_classes=10)
    """
    factory = MODELS.get(name)
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params and not takes_any]
    if unknown:
        allowed = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        raise DeepslimError(f"model '{name}' has no option {', '.join(repr(k) for k in unknown)}",
                            hint=f"options: {', '.join(allowed)}")
    try:
        model = factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise DeepslimError(f"cannot build model '{name}' with {kwargs}: {exc}") from exc
    model.__dict__["deepslim_model"] = {"name": name, "kwargs": dict(kwargs)}
    return model


def model_options(name: str) -> dict:
    """The keyword options of a registered model with their defaults."""
    factory = MODELS.get(name)
    return {k: (None if p.default is inspect.Parameter.empty else p.default)
            for k, p in inspect.signature(factory).parameters.items()
            if p.kind is not inspect.Parameter.VAR_KEYWORD}
