"""Config base class: a validated dataclass with a type tag, to and from dicts.

Every technique describes itself with one of these, so recipes, reports and
checkpoints can name it: ``{"type": "TrainConfig", "epochs": 10, ...}``.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar

from .errors import DeepslimError
from .registry import near_matches, unknown_name_error

_CONFIG_TYPES: dict[str, type["Config"]] = {}


class Config:
    """Base for config dataclasses. Subclasses are registered by class name.

    Subclasses are ``@dataclasses.dataclass`` classes and validate in
    ``__post_init__`` with the ``check_*`` helpers below.

    Example:
        >>> @dataclasses.dataclass
        ... class Pruning(Config):
        ...     ratio: float = 0.5
        ...     def __post_init__(self):
        ...         self.check_range("ratio", 0.0, 1.0)
        >>> Config.from_dict({"type": "Pruning", "ratio": 0.3})
        Pruning(ratio=0.3)
    """

    type_tag: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.type_tag = cls.__name__
        _CONFIG_TYPES[cls.__name__] = cls

    # -- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type_tag}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        data = dict(data)
        tag = data.pop("type", None) or cls.type_tag
        if not tag:
            raise DeepslimError("config has no 'type' field", hint=f"add type: one of {sorted(_CONFIG_TYPES)}")
        if tag not in _CONFIG_TYPES:
            raise unknown_name_error("config type", tag, _CONFIG_TYPES)
        target = _CONFIG_TYPES[tag]
        if cls is not Config and not issubclass(target, cls):
            raise DeepslimError(f"config type '{tag}' is not a {cls.__name__}")
        names = {f.name for f in dataclasses.fields(target)}  # type: ignore[arg-type]
        for key in data:
            if key not in names:
                close = near_matches(key, names)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise DeepslimError(f"{tag} has no field '{key}'", hint=hint + f"fields: {', '.join(sorted(names))}")
        hints = typing.get_type_hints(target)
        for key, value in list(data.items()):
            if isinstance(value, list) and "tuple" in str(hints.get(key, "")).lower():
                data[key] = tuple(value)
        return target(**data)

    # -- validation helpers (messages name the field and what is allowed) --
    def check_choice(self, field: str, allowed) -> None:
        value = getattr(self, field)
        if value not in allowed:
            raise DeepslimError(
                f"{self.type_tag}.{field} = {value!r} is not allowed",
                hint=f"allowed values: {', '.join(repr(a) for a in allowed)}",
            )

    def check_range(self, field: str, low=None, high=None, *, low_inclusive=True, high_inclusive=True,
                    integer=False) -> None:
        value = getattr(self, field)
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise DeepslimError(f"{self.type_tag}.{field} = {value!r} must be {'an integer' if integer else 'a number'}")
        too_low = low is not None and (value < low if low_inclusive else value <= low)
        too_high = high is not None and (value > high if high_inclusive else value >= high)
        if too_low or too_high:
            lo = "-inf" if low is None else f"{low}"
            hi = "inf" if high is None else f"{high}"
            interval = f"{'[' if low_inclusive else '('}{lo}, {hi}{']' if high_inclusive else ')'}"
            raise DeepslimError(f"{self.type_tag}.{field} = {value!r} is out of range", hint=f"allowed: {interval}")


def config_types() -> list[str]:
    """Names of every registered config type."""
    return sorted(_CONFIG_TYPES)
