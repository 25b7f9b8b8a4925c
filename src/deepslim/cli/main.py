"""The ``deepslim`` command line: one sub-command per file in this package."""

from __future__ import annotations

import argparse
import sys

from ..core import DeepslimError, set_quiet
from . import (
    chart,
    compress,
    cost,
    distill,
    evaluate,
    export,
    factorize,
    lottery,
    profile,
    prune,
    quantize,
    sensitivity,
    train,
    zoo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepslim",
        description="Make trained deep networks cheaper to run, and prove it with measurements.",
        epilog="Run `deepslim COMMAND --help` for a command's options.")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or status lines")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (zoo, train, distill, evaluate, export, profile, cost, chart, prune, sensitivity, lottery, factorize,
                   quantize, compress):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    set_quiet(args.quiet or getattr(args, "json", False) and not sys.stderr.isatty())
    try:
        return args.func(args)
    except DeepslimError as exc:
        if args.traceback:
            raise
        print(f"error: {exc.message}" + (f" — {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
