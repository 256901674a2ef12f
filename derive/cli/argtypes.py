"""argparse value types shared by the commands: a bad value becomes argparse's one-line usage error.

Every size option is bounded: `number(..., limit=...)` (or `high=`, `reason=`) refuses values above
the bound, and `show_bounds(parser)` (run once by derive.cli.build_parser over every command) adds
"at most N: reason" to the option's --help.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

from derive.limits import THREADS, Limit, format_number


def number(
    kind: Callable[[str], float],
    what: str,
    low: float = 0,
    high: float = math.inf,
    reason: str = "",
    *,
    limit: Limit | None = None,
) -> Callable[[str], float]:
    """An argparse type: `kind(text)`, finite and in [low, high]; otherwise 'expected WHAT, got TEXT'.

    `limit` gives low, high and reason at once (derive.limits); the reason appears in --help and in
    the error for a value above `high`.
    """
    shown = ""
    if limit is not None:
        low, high, reason, shown = limit.low, limit.high, limit.reason, limit.high_text

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (math.isfinite(value) and value >= low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if value > high:
            why = f" ({reason})" if reason else ""
            raise argparse.ArgumentTypeError(
                f"expected {what} of at most {shown or format_number(high)}{why}, got {text!r}"
            )
        return value

    if math.isfinite(high):
        parse.limit = Limit(low, high, reason, shown)  # type: ignore[attr-defined]
    return parse


def show_bounds(parser: argparse.ArgumentParser) -> None:
    """Append 'at most N: reason' to the help of every option of `parser` (and its subcommands)
    whose type is a bounded `number`."""
    for action in parser._actions:  # noqa: SLF001 (argparse keeps no public list)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                show_bounds(sub)
            continue
        limit = getattr(action.type, "limit", None)
        if limit is None or action.help in (None, argparse.SUPPRESS):
            continue
        text = limit.help().replace("%", "%%")
        if text not in action.help:
            action.help = f"{action.help}; {text}"


THREADS_HELP = (
    "torch CPU threads (default: OMP_NUM_THREADS if set; with --resume, the count the run "
    "recorded; else the cores the load average leaves free, at least 1; waiting threads sleep: "
    "OMP_WAIT_POLICY=PASSIVE unless set)"
)


def add_threads_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    help: str = THREADS_HELP,  # noqa: A002 (argparse's own name)
    default: int | None = None,
) -> None:
    """`--threads N` of a command that runs torch; derive.cli.main applies it (derive.devices)."""

    parser.add_argument(
        "--threads",
        type=number(int, "a positive integer", limit=THREADS),
        default=default,
        metavar="N",
        help=help,
    )


def recorded_threads(args: argparse.Namespace) -> int | None:
    """On `--resume` without --threads or OMP_NUM_THREADS: the torch thread count the run folder's
    summary.json recorded (None if there is none to read).

    A CPU reduction can add in another order with another thread count, so a run resumed on the
    threads it started with continues bit for bit as if never stopped, whatever the load is now.
    """
    if getattr(args, "threads", None) or not getattr(args, "resume", False):
        return None
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return None
    out = getattr(args, "out", None)
    if not isinstance(out, str | Path):
        return None
    try:
        summary = json.loads((Path(out) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the resume itself reports a missing or damaged run folder
    if not isinstance(summary, dict):
        return None
    software = summary.get("software")
    record = software.get("cpu_threads") if isinstance(software, dict) else None
    if not isinstance(record, dict):
        record = summary.get("cpu_threads")
    threads = record.get("threads") if isinstance(record, dict) else None
    if isinstance(threads, int) and not isinstance(threads, bool) and 1 <= threads <= 1024:
        return threads
    return None
