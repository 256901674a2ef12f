"""`derive simulate --task wellposed`: the well-posed simulation (derive.experiments.wellposed).

The papers' task (`--task papers`, the default) keeps every option of `derive simulate`; the
well-posed one has its grid and recipe fixed by the study it reports, so it takes only --out,
--resume, --force, --quick and --threads, and refuses the others in one line (exit status 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from derive.cli.options_parser import given_values
from derive.errors import UserError

TASKS = ("papers", "wellposed")
TASK_HELP = (
    "papers: the papers' Table B1 on random targets (default); wellposed: networks learn an "
    "energy's minimiser, beside each optimizer's own error (docs/results/simulation_wellposed/)"
)


def add_task_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--task", choices=TASKS, default="papers", metavar="NAME", help=TASK_HELP)


def run_wellposed(args: argparse.Namespace, config: type) -> int:
    """Run (or resume) the well-posed study in --out, then write its report there."""
    from derive.experiments.wellposed.report import write_report  # deferred: imports torch
    from derive.experiments.wellposed.runner import run_study  # deferred: imports torch

    typed = sorted(given_values(args, config))
    if [name for name in typed if name != "quick"]:
        flags = ", ".join("--" + name.replace("_", "-") for name in typed if name != "quick")
        raise UserError(
            f"--task wellposed fixes its own grid and recipe; drop {flags} "
            "(it takes --out, --resume, --force, --quick and --threads)"
        )
    default = "runs/simulation-wellposed-quick" if args.quick else "runs/simulation-wellposed"
    out = Path(args.out or default)
    run_study(out, quick=args.quick, resume=args.resume, force=args.force)
    print(write_report(out))
    return 0
