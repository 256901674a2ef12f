"""`derive report RUN_DIR... [--runs-root DIR] [--simulation DIR] [--paired-tests] [--out FILE]`: the CIFAR results doc."""

from __future__ import annotations

import argparse
import shlex

DESCRIPTION = """\
Collect `derive train` run folders into one markdown results doc: each model's final test error
(mean ± std over seeds, with n) beside the papers' printed SCIS'23 Table 1 and ACML'18 Table 4, grouped
by model, dataset and augmentation ("+"), with the epochs, seeds, recipe and device of each row, a
table of every run (diverged ones included) and the command that made it. Runs on cifar-10-head (the
10 % subset) or other subsets get their own tables, never beside the papers' full-data numbers.
--simulation adds the table of a `derive simulate` output folder. The file is written atomically and
depends only on its inputs (sorted; no dates). --paired-tests adds to each paired table the exact
two-sided p-values of the sign-flip permutation test (all 2^n sign assignments of the n per-seed
differences) and of the sign test."""

EPILOG = """\
examples:
  derive report runs/hbnet56-c10 runs/resnet56-c10
  derive report --runs-root runs --simulation docs/results/simulation --out docs/results/cifar.md
  derive report --runs-root docs/results/runs/cifar10-head-converged --paired-tests --out study.md
exit status: 0 done, 2 bad input (a missing or malformed run folder, ...): one line, nothing written."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive report` and its options."""
    p = subparsers.add_parser(
        "report",
        help="collect training runs (and a simulation) into a markdown results doc",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs", nargs="*", metavar="RUN_DIR", help="run folders written by `derive train`"
    )
    p.add_argument(
        "--runs-root",
        action="append",
        default=[],
        metavar="DIR",
        help="also every run folder under DIR (repeatable)",
    )
    p.add_argument(
        "--simulation",
        metavar="DIR",
        default=None,
        help="a `derive simulate` output folder to include",
    )
    p.add_argument(
        "--paired-tests",
        action="store_true",
        help="add exact paired tests (sign-flip permutation, sign test) to the paired tables",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        default="docs/results/cifar.md",
        help="markdown file to write (default: docs/results/cifar.md)",
    )
    p.set_defaults(run=run)


def command_for(args: argparse.Namespace) -> str:
    """The `derive report` command line of `args`, options in a fixed order."""
    parts = ["derive", "report", *args.runs]
    for root in args.runs_root:
        parts += ["--runs-root", root]
    if args.simulation:
        parts += ["--simulation", args.simulation]
    if args.paired_tests:
        parts.append("--paired-tests")
    parts += ["--out", args.out]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Read and check every input, then write the doc; print its path."""
    # deferred: ~0.1 s of imports, kept out of `derive --help`
    from derive.experiments.cifar.report import build_report
    from derive.experiments.tables import write_report  # deferred: ~0.02 s, as above

    text = build_report(
        args.runs,
        args.runs_root,
        args.simulation,
        command=command_for(args),
        paired_tests=args.paired_tests,
    )
    print(write_report(args.out, text))
    return 0
