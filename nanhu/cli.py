"""The ``nanhu`` command: assembles the subcommands each package offers and dispatches.

No package imports this module; the arrows run from here down to the packages. What every
subcommand shares is set here, once: the global options (accepted before or after the
subcommand), defaults shown in every ``--help``, and a quiet exit when the reader of the output
goes away (``nanhu list | head``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from nanhu import __version__
from nanhu.engine import errors
from nanhu.engine.audio.params import AudioParams
from nanhu.engine.cli import exit_code_for
from nanhu.engine.fingerprint import FORMAT_VERSION as FP_FORMAT_VERSION
from nanhu.engine.fingerprint import READABLE_VERSIONS
from nanhu.engine.store.catalog_schema import (
    COMPACT_FORMAT_VERSION,
    FORMAT_VERSION,
    LOCAL_FORMAT_VERSION,
    META_VERSION,
    PEAKS_FORMAT_VERSION,
)
from nanhu.engine.video.params import VideoParams

# (module, what it offers): each module has ``add_commands(subparsers)``.
_COMMAND_MODULES = ("nanhu.engine.cli", "nanhu.indexer.cli", "nanhu.server.cli",
                    "nanhu.server.cluster_cli", "nanhu.benchmarks.cli")
#: exit status after the reader of stdout went away: 128 + SIGPIPE, as a shell reports it
EXIT_BROKEN_PIPE = 128 + 13


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless its help already says it or there is none to show
    (None, False, an empty list: an unset flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS) or \
                not action.option_strings:
            return text
        return super()._get_help_string(action)


def _global_options(parser: argparse.ArgumentParser, *, default) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="debug logging on stderr")


def version_text() -> str:
    """What ``nanhu --version`` prints: the package on the first line (as other tools do), then
    the formats it writes and reads, which decide whether a catalog or a fingerprint made by
    another installation is usable here."""
    return (f"nanhu {__version__}\n"
            f"audio fingerprints  {AudioParams().tag()}\n"
            f"video fingerprints  {VideoParams().tag()}\n"
            f"fingerprint format  1 with audio keys, {FP_FORMAT_VERSION} with a query's audio peaks "
            f"(reads {', '.join(map(str, READABLE_VERSIONS))})\n"
            f"catalog format      {FORMAT_VERSION}, {COMPACT_FORMAT_VERSION} with compact keyframes, "
            f"{LOCAL_FORMAT_VERSION} with local features, "
            f"{PEAKS_FORMAT_VERSION} with reference peaks (metadata schema {META_VERSION})")


class _VersionAction(argparse.Action):
    """``--version``, printed as it is: argparse's own action rewraps it to the terminal."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the version and the fingerprint and catalog format versions, then exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.values()


def _finish(parser: argparse.ArgumentParser) -> None:
    """Every subcommand (nested ones too) shows defaults and takes the global options; there
    they default to SUPPRESS, so ``-v`` before the subcommand is not undone by its absence after."""
    for sub in _subparsers(parser):
        sub.formatter_class = HelpFormatter
        if "--verbose" not in sub._option_string_actions:
            _global_options(sub, default=argparse.SUPPRESS)
        _finish(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanhu", description="Nanhu: content fingerprint matching for copyright protection",
        formatter_class=HelpFormatter,
    )
    _global_options(parser, default=False)
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module: say so
                raise
            continue
        module.add_commands(subparsers)
    _finish(parser)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests)
        pass


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`nanhu list | head`): stop quietly, as cat and grep do.
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
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
