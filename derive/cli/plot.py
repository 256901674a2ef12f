"""`derive plot RUN_DIR... [--out FILE.png]`: learning curves of training runs, to look at rather than read."""

from __future__ import annotations

import argparse
from pathlib import Path

from derive.limits import TITLE_CHARS

DESCRIPTION = """\
Draw the learning curves of one or more `derive train` runs in one figure: cross-entropy loss (train
solid, test dashed) and error in % (test solid, train dotted) against the epoch, one colour per run,
log scales, grey dashes where the learning rate was divided. The legend gives each run's final and best
test error. Runs still in progress are drawn up to their last completed epoch.
--steps draws instead every optimizer step's batch loss and gradient norm from each run's steps.csv
(`derive train --log-steps`), so early spikes show.
Needs matplotlib (pip install 'derive[plot]')."""

EPILOG = """\
examples:
  derive plot runs/hbnet56-c10                       writes runs/hbnet56-c10/curves.png
  derive plot runs/hbnet56-c10 runs/r56-c10 --out hb-vs-resnet.png
  derive plot runs/* --out all.svg --title "CIFAR-10+"
  derive plot --steps runs/r110-s0 runs/hb110-s0 --out steps.png    per-step loss, log scale
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive plot` and its options."""
    p = subparsers.add_parser(
        "plot",
        help="draw learning curves of training runs (PNG)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run directories written by `derive train`"
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="image to write, .png/.pdf/.svg (default: RUN_DIR/curves.png for one run, curves.png here "
        "for several; steps.png with --steps)",
    )
    p.add_argument(
        "--steps",
        action="store_true",
        help="per-step loss and gradient norm from steps.csv (runs trained with --log-steps)",
    )
    p.add_argument(
        "--log-y",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --steps: log-scale y axes (default: on; --no-log-y for linear)",
    )
    p.add_argument(
        "--title",
        default=None,
        help="title above the figure, plain text shown as typed ($ included); "
        f"at most {TITLE_CHARS} characters",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Draw the figure and print its path."""
    name = "steps.png" if args.steps else "curves.png"
    out = args.out or (Path(args.runs[0]) / name if len(args.runs) == 1 else Path(name))
    if args.steps:
        from derive.train.stepplot import plot_steps  # deferred: imports torch

        print(plot_steps(args.runs, out, title=args.title, log_y=args.log_y))
        return 0
    # deferred: matplotlib's set-up, kept out of `derive --help`
    from derive.train.curves import plot_runs

    print(plot_runs(args.runs, out, title=args.title))
    return 0
