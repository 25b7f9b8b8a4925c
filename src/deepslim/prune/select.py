"""Which layers a pruning config applies to.

Written once here so every pruning method selects layers the same way: a
``filter_fn(module, name)``, or a mapping of names / regexes to configs (``None`` skips),
and by default every conv and linear layer except the classifier head.
"""

from __future__ import annotations

import re
from typing import Callable

from torch import nn

from ..core import DeepslimError
from ..core.registry import near_matches

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def classifier_head(model: nn.Module) -> str | None:
    """Name of the last Linear (or 1x1 conv producing the logits) in the model, if any."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE):
            last = name
    return last


def check_names_exist(model: nn.Module, names) -> None:
    """Refuse names (exact, not regexes) that are not modules of ``model``, with near matches."""
    known = [n for n, _ in model.named_modules() if n]
    for name in names:
        if name in known or _looks_like_regex(name):
            continue
        close = near_matches(name, known)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see `deepslim profile` for layer names"
        raise DeepslimError(f"the model has no layer '{name}'", hint=hint)


def _looks_like_regex(name: str) -> bool:
    return any(ch in name for ch in "*+?[](){}|^$\\")


def select_layers(model: nn.Module, *, filter_fn: Callable[[nn.Module, str], bool] | None = None,
                  mapping: dict | None = None, default=None, skip_head: bool = True) -> dict[str, object]:
    """Map each selected layer's name to its config.

    ``mapping`` keys are exact names or regexes (``re.fullmatch``); the first match wins; a
    value of ``None`` skips the layer. Layers no key matches get ``default``.

    Example:
        >>> from deepslim import create_model
        >>> sorted(select_layers(create_model("lenet5"), default="cfg"))
        ['0', '3', '7', '9']
    """
    if mapping:
        check_names_exist(model, mapping)
    head = classifier_head(model) if skip_head else None
    chosen = {}
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE) or name == head:
            continue
        if filter_fn is not None and not filter_fn(module, name):
            continue
        config = default
        for key, value in (mapping or {}).items():
            if key == name or (_looks_like_regex(key) and re.fullmatch(key, name)):
                config = value
                break
        if config is not None:
            chosen[name] = config
    return chosen
