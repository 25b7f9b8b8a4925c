"""The argument parser every deepslim command uses: one-line errors with near-match suggestions.

argparse prints several lines of usage before its error; a user who typed ``--subest`` needs
one line that names the problem and the fix:

    error: deepslim prune: unrecognized argument --subest — did you mean --subset?

Example:
    >>> parser = DeepslimParser(prog="deepslim demo")
    >>> _ = parser.add_argument("--subset", type=int, help="training images to use")
    >>> unknown_option_hint(parser, "--subest")
    'did you mean --subset?'
"""

from __future__ import annotations

import argparse
import sys

from ..core.registry import near_matches


class UsageError(SystemExit):
    """A command-line mistake: exit status 2, message already printed on one line."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message


def _visible_options(parser: argparse.ArgumentParser) -> list[str]:
    """Long option names a user may type (hidden deprecated aliases are not suggested)."""
    return [s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings if s.startswith("--")]


def unknown_option_hint(parser: argparse.ArgumentParser, option: str) -> str:
    """'did you mean --subset?' for '--subest', else a pointer to --help."""
    close = near_matches(option.split("=", 1)[0], _visible_options(parser), n=1)
    if close:
        return f"did you mean {close[0]}?"
    return f"see `{parser.prog} --help` for the options"


class DeepslimParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one ``error: PROG: problem — fix`` line (exit status 2).

    Sub-parsers made with ``add_subparsers`` are of this class too, so every command behaves the same.
    """

    def __init__(self, *args, **kwargs):
        # Abbreviations (--fine for --finetune-epochs) break silently when an option is added later
        # that shares the prefix; the near-match hint covers the typing they save.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        hint = f"see `{self.prog} --help`"
        if message.startswith("the following arguments are required"):
            hint = f"see `{self.prog} --help` for what each one means"
        self.fail(f"{self.prog}: {message}", hint)

    @staticmethod
    def fail(message: str, hint: str = ""):
        line = f"error: {message}" + (f" — {hint}" if hint else "")
        print(line, file=sys.stderr)
        raise UsageError(line)

    def _check_value(self, action, value):
        # argparse's own message lists every choice but never the one the user meant.
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            close = near_matches(str(value), choices, n=2)
            hint = (f"did you mean {' or '.join(repr(c) for c in close)}? " if close else "") + \
                f"choose from {', '.join(choices)}"
            if isinstance(action, argparse._SubParsersAction):
                self.fail(f"{self.prog}: unknown command '{value}'", hint)
            self.fail(f"{self.prog}: argument {'/'.join(action.option_strings)}: invalid choice '{value}'", hint)

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            # Name the command the stray words were given to, and suggest the option meant.
            parser = _subparser(self, namespace) or self
            options = [e for e in extras if e.startswith("-")]
            shown = options or extras
            noun = "argument" if len(shown) == 1 else "arguments"
            hint = unknown_option_hint(parser, options[0]) if options else f"see `{parser.prog} --help`"
            self.fail(f"{parser.prog}: unrecognized {noun} {' '.join(shown)}", hint)
        return namespace


def _subparser(parser: argparse.ArgumentParser, namespace) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(getattr(namespace, action.dest, None) or "")
    return None
