"""A ``nn.Module`` base that remembers its constructor arguments.

Artifacts must rebuild models whose layers were pruned or factorized. For deepslim's
own modules we record the arguments each was built with, so the saved architecture can
say "a ``BasicBlock(in_channels=32, out_channels=64, stride=2)``" without pickling code.
"""

from __future__ import annotations

import functools
import inspect

from torch import nn


class SerializableModule(nn.Module):
    """Subclass this instead of ``nn.Module``; ``self.init_args`` holds the constructor arguments.

    Arguments must be JSON-friendly (numbers, strings, booleans, None, lists/tuples of them).

    Example:
        >>> class Scale(SerializableModule):
        ...     def __init__(self, factor: float = 2.0):
        ...         super().__init__()
        ...         self.factor = factor
        >>> Scale(3.0).init_args
        {'factor': 3.0}
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        original = cls.__dict__.get("__init__")
        if original is None:
            return
        signature = inspect.signature(original)

        @functools.wraps(original)
        def __init__(self, *args, **kw):
            original(self, *args, **kw)
            bound = signature.bind(self, *args, **kw)
            bound.apply_defaults()
            # The most-derived class's wrapper finishes last, so its arguments win.
            self.__dict__["init_args"] = {k: v for k, v in bound.arguments.items() if k != "self"}

        cls.__init__ = __init__


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule at dotted path ``name`` (e.g. ``"stages.0.conv1"``) with ``module``."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)
