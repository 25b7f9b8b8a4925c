"""Options that act or are refused: method-specific options, hidden old spellings, late defaults.

A command lists which options each ``--method`` uses; anything else the user gave is refused
with one line naming what applies, instead of being silently ignored.

Example:
    >>> import argparse
    >>> args = argparse.Namespace(method="magnitude", sparsity=None, ratio=0.8)
    >>> try:
    ...     refuse_inapplicable(args, "magnitude", {"channel": ("ratio",), "magnitude": ("sparsity",)})
    ... except DeepslimError as exc:
    ...     print(exc.message, "—", exc.hint)
    --ratio does not apply to --method magnitude — --ratio is for --method channel; --method magnitude takes --sparsity
"""

from __future__ import annotations

import argparse

from ..core import DeepslimError


class DeprecatedAlias(argparse.Action):
    """An old spelling that keeps working, hidden from --help; ``main`` logs the new name once."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        notes = [*getattr(namespace, "deprecated_notes", ()), f"{option_string} is the old spelling of {self.new}"]
        namespace.deprecated_notes = notes


def add_alias(parser: argparse.ArgumentParser, old: str, action: argparse.Action) -> None:
    """Keep ``old`` working as a hidden spelling of the option ``action`` (returned by add_argument).

    Example:
        >>> p = argparse.ArgumentParser()
        >>> add_alias(p, "--epochs", p.add_argument("--finetune-epochs", type=int))
        >>> p.parse_args(["--epochs", "3"]).finetune_epochs
        3
    """
    parser.add_argument(old, dest=action.dest, type=action.type, metavar=action.metavar, default=argparse.SUPPRESS,
                        action=DeprecatedAlias, new=action.option_strings[0], help=argparse.SUPPRESS)


def flag(dest: str) -> str:
    """'finetune_epochs' -> '--finetune-epochs'."""
    return "--" + dest.replace("_", "-")


def given(args, dest: str) -> bool:
    """Whether the user gave an option whose default is None (or a flag, False)."""
    value = getattr(args, dest, None)
    return value is not None and value is not False


def refuse_inapplicable(args, method: str, applies: dict[str, tuple[str, ...]], hints: dict | None = None) -> None:
    """Refuse each method-specific option given that ``method`` does not use, naming what applies.

    ``applies`` maps every method to the options (dests) it uses; an option listed for no method
    is not method-specific and never refused here. ``hints[(dest, method)]`` overrides the hint.
    """
    specific = list(dict.fromkeys(d for options in applies.values() for d in options))
    for dest in specific:
        if dest in applies[method] or not given(args, dest):
            continue
        users = [m for m, options in applies.items() if dest in options]
        takes = ", ".join(flag(d) for d in applies[method]) or "none of the method-specific options"
        hint = (hints or {}).get((dest, method)) or \
            f"{flag(dest)} is for --method {' or '.join(users)}; --method {method} takes {takes}"
        raise DeepslimError(f"{flag(dest)} does not apply to --method {method}", hint=hint)


def refuse_unless(args, dest: str, condition: bool, needs: str, hint: str) -> None:
    """Refuse option ``dest`` when given but what makes it act (``needs``, e.g. '--finetune-epochs')
    is missing: '--lr has no effect without --finetune-epochs — ...'."""
    if given(args, dest) and not condition:
        raise DeepslimError(f"{flag(dest)} has no effect without {needs}", hint=hint)


def refuse_model_args(args) -> None:
    """Commands that need a trained model (a folder or a shipped baseline) never build a zoo model,
    so --model-arg could not act."""
    if getattr(args, "model_arg", None):
        raise DeepslimError("--model-arg has no effect here: this command works on a trained model",
                            hint="give a saved model folder or a shipped baseline, without --model-arg")


def fill_defaults(args, defaults: dict) -> None:
    """Set the options left at None to their defaults, once the given ones have been checked."""
    for dest, value in defaults.items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, value)


def check_count(args, dest: str, low: int = 0) -> None:
    """Refuse an integer option below ``low`` (e.g. a negative epoch count)."""
    value = getattr(args, dest, None)
    if value is not None and value < low:
        raise DeepslimError(f"{flag(dest)} {value} must be >= {low}", hint=f"e.g. {flag(dest)} {max(low, 1)}")
