"""`derive nas search|network|report`: architecture search from optimization algorithms (SCIS §9).

Each subcommand lives in its own module with `register(subparsers)`: `derive.cli.nas_search`
(search a space, write genotype.json), `derive.cli.nas_network` (generate the evaluation network's
code from a genotype) and `derive.cli.nas_report` (the study doc from search and evaluation runs).
"""

from __future__ import annotations

import argparse
import importlib

SUBCOMMANDS = ("search", "network", "report")

EPILOG = """examples:
  derive nas search --space heavyball --hb-init --dataset cifar10 --data-dir ~/data --out runs/hb
  derive nas search --space agd --show
  derive nas network runs/hb/genotype.json --out nets/
  derive nas network darts_v2 --out nets/ && derive train nets/darts_v2.py --recipe darts-eval ...
  derive nas report --study docs/results/nas-study --out docs/results/nas_study.md
run `derive nas SUBCOMMAND --help` for the options of each."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive nas` and its subcommands."""
    parser = subparsers.add_parser(
        "nas",
        help="neural architecture search with spaces derived from optimization algorithms",
        description="DARTS (Liu et al. 2019) with the search spaces of SCIS §9: the cell's edges come "
        "from an algorithm's layer recurrence (heavy ball, all-history AGD, ...).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="nas_command", metavar="SUBCOMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"derive.cli.nas_{name}").register(sub)
