"""The ``nanhu`` command: assembles the subcommands each package offers and dispatches.

No package imports this module; the arrows run from here down to the packages.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from engine import errors
from engine.cli import exit_code_for

# (module, what it offers): each module has ``add_commands(subparsers)``.
_COMMAND_MODULES = ("engine.cli", "indexer.cli", "server.cli", "benchmarks.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanhu", description="Nanhu: content fingerprint matching for copyright protection",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module: say so
                raise
            continue
        module.add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="nanhu: %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except errors.NanhuError as exc:
        print(f"nanhu: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print("nanhu: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
