"""The ``deepslim`` command line: one sub-command per file in this package."""

from __future__ import annotations

import argparse
import sys

from ..core import DeepslimError, log, set_quiet
from . import (
    auto,
    chart,
    compress,
    cost,
    distill,
    evaluate,
    export,
    factorize,
    lottery,
    nas,
    profile,
    prune,
    quantize,
    sensitivity,
    train,
    zoo,
)
from .parser import DeepslimParser

# What to do after Ctrl-C, for commands that can continue; a command may set args.interrupt_hint
# itself once it knows more (e.g. that nothing was written yet).
_RESUME = "rerun the same command with --resume to continue from the last finished epoch"
INTERRUPT_HINTS = {"train": _RESUME, "distill": _RESUME,
                   "compress": "rerun the same command to resume from the last finished stage"}
DEFAULT_INTERRUPT_HINT = "nothing was saved; rerun the same command to start again"


def package_version() -> str:
    """The installed distribution's version, else the source tree's ``deepslim.__version__``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deepslim")
    except PackageNotFoundError:  # running from a source tree that was never installed
        from .. import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = DeepslimParser(
        prog="deepslim",
        description="Make trained deep networks cheaper to run, and prove it with measurements.",
        epilog="Run `deepslim COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"deepslim {package_version()}",
                        help="print the version and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or status lines")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (zoo, train, distill, evaluate, export, profile, cost, chart, prune, sensitivity, lottery, factorize,
                   quantize, compress, auto, nas):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2, already printed on one line)
        return exc.code if isinstance(exc.code, int) else 2
    if not args.command:
        parser.print_help()
        return 2
    args.argv = argv  # the command as typed, for the metadata and model cards of what it writes
    set_quiet(args.quiet or getattr(args, "json", False) and not sys.stderr.isatty())
    for note in getattr(args, "deprecated_notes", ()):
        log(f"note: {note}")
    try:
        return args.func(args)
    except DeepslimError as exc:
        if args.traceback:
            raise
        print(f"error: {exc.message}" + (f" — {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        hint = getattr(args, "interrupt_hint", None) or INTERRUPT_HINTS.get(args.command, DEFAULT_INTERRUPT_HINT)
        print(f"error: interrupted — {hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
