"""Name -> factory registries filled by decorators (models, data sets, ...)."""

from __future__ import annotations

import difflib
from typing import Any, Callable, Generic, TypeVar

from .errors import DeepslimError

T = TypeVar("T")


def near_matches(name: str, choices, n: int = 3) -> list[str]:
    """The registered names closest to a misspelt one."""
    return difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)


def unknown_name_error(kind: str, name: str, choices) -> DeepslimError:
    choices = sorted(choices)
    close = near_matches(name, choices)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    hint += f"valid {kind}s: {', '.join(choices)}"
    return DeepslimError(f"unknown {kind} '{name}'", hint=hint)


class Registry(Generic[T]):
    """A named collection of factories, filled with ``@registry.register(name)``.

    Example:
        >>> MODELS = Registry("model")
        >>> @MODELS.register("tiny", description="a tiny net")
        ... def tiny(**kw): ...
        >>> MODELS.names()
        ['tiny']
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            info.setdefault("description", doc[0] if doc else "")
            self._info[name] = info
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._items:
            raise unknown_name_error(self.kind, name, self._items)
        return self._items[name]

    def info(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._info[name])

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
