"""Command-line interface: `derive <command> ...`.

Each command lives in its own module `derive.cli.<command>` with `register(subparsers)`; heavy
imports (SymPy, torch) happen inside the command, so `derive --help` stays fast.
Bad input raises UserError: one line on stderr, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from derive import __version__
from derive.cli.argtypes import recorded_threads, show_bounds
from derive.cli.options_parser import record_given
from derive.devices import apply_threads, prefer_passive_wait
from derive.errors import UserError
from derive.signals import Terminated, terminate_as_interrupt

MAX_MESSAGE = 400
"""Characters of an error message shown at most: longer ones keep their head and tail."""

COMMANDS = (
    "activation",
    "network",
    "train",
    "export",
    "nas",
    "simulate",
    "report",
    "plot",
    "stability",
    "demo",
    "regenerate",
)

EPILOG = """examples:
  derive activation swish                 energy, gradient and proofs for one activation
  derive activation --all --format markdown
  derive network --algo heavyball --form fc --out generated/
  derive train resnet56 --dataset cifar10 --data-dir ~/data --out runs/r56
  derive simulate --quick
run `derive COMMAND --help` for the options of each command."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: usage mistakes become UserError (exit 2) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix("derive").strip()
        raise UserError(f"{command}: {message}" if command else message)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        """argparse's, plus which declared options were typed (derive.cli.options_parser)."""
        namespace, extras = super().parse_known_args(args, namespace)
        return record_given(self, args, namespace), extras


def build_parser() -> ArgumentParser:
    """The full `derive` parser with every subcommand registered."""
    parser = ArgumentParser(
        prog="derive",
        description="Turn optimization algorithms into neural network architectures, "
        "with the mathematics checked by SymPy and mpmath.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"derive {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details on stderr")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"derive.cli.{name}").register(subparsers)
    show_bounds(parser)
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)  # also when a command runs another (derive demo)


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """`message` on one line, at most about `limit` characters.

    Messages quote the user's input (an expression, a path, an option value), which can be
    kilobytes long; the head names what was wrong and the tail usually says why, so a long
    message keeps both and drops its middle, saying how much was cut.
    """
    text = " ".join(message.split())
    if len(text) <= limit:
        return text
    head, tail = limit * 5 // 8, limit * 2 // 8
    cut = len(text) - head - tail
    return f"{text[:head]} … [{cut:,} characters cut] … {text[-tail:]}"


def _threads(args: argparse.Namespace) -> contextlib.AbstractContextManager[object]:
    """Torch's thread count for commands with --threads (derive.cli.argtypes.add_threads_option)."""
    if not hasattr(args, "threads"):
        return contextlib.nullcontext()
    return apply_threads(args.threads or recorded_threads(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 1 internal error, 2 bad input, 130 interrupted
    by Ctrl-C, 143 stopped by SIGTERM; both stop a run the same way, see derive.signals)."""
    prefer_passive_wait()  # before any command module imports torch
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _configure_logging(args.verbose, args.quiet)
        with terminate_as_interrupt(), _threads(args):
            return int(args.run(args) or 0)
    except UserError as exc:
        print(f"derive: error: {one_line(str(exc))}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt as exc:
        print(
            f"derive: interrupted{' (SIGTERM)' if isinstance(exc, Terminated) else ''}",
            file=sys.stderr,
        )
        return getattr(exc, "exit_code", 130)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug in derive, not bad input
        if os.environ.get("DERIVE_DEBUG"):
            raise
        print(
            f"derive: internal error: {one_line(f'{type(exc).__name__}: {exc}')} "
            "(set DERIVE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
