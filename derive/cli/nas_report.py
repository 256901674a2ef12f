"""`derive nas report --study DIR [--eval DIR] --out FILE`: the NAS study doc from committed run files."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Collect `derive nas search` run folders (each directly under --study) into one markdown doc: per
space and initialisation, the supernet's architecture-half accuracy (mean ± std over seeds), the share
of parameter-free operations and the collapses (cells of parameter-free operations only), the search
cost, each run's derived cells. With --eval, the evaluations too: EVAL/<search folder name> is a
`derive train` run of the network `derive nas network` generated from that search's genotype
(metrics.csv, summary.json, the network file; cost.json with its CPU time, optional), checked to have
trained that genotype; other folders of EVAL are reference networks (e.g. darts_v2 at several
seeds). The doc gives the evaluations' test error per space (mean ± std), their budget and cost, and
what they do and do not show. Written atomically; depends only on its inputs."""

EPILOG = """\
examples:
  derive nas report --study docs/results/nas-study --out docs/results/nas_study.md
  derive nas report --study docs/results/nas-study --eval docs/results/nas-eval --out docs/results/nas_study.md
  bash bench/nas_eval_study.sh      (writes docs/results/nas-eval from the committed searches)
exit status: 0 done, 2 bad input (a missing or malformed run folder, an evaluation of another
genotype): one line, nothing written."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive nas report`."""
    p = subparsers.add_parser(
        "report",
        help="build the NAS study doc from search (and evaluation) run folders",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--study", required=True, metavar="DIR", help="folder of search run folders")
    p.add_argument(
        "--eval",
        default=None,
        metavar="DIR",
        help="folder of evaluation runs: EVAL/<search run> for a search, any other name a reference",
    )
    p.add_argument(
        "--out",
        default="docs/results/nas_study.md",
        metavar="FILE",
        help="markdown file to write (default: docs/results/nas_study.md)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # deferred: imports torch
    from derive.experiments.nas.report import build_nas_report, command_for

    # deferred: ~0.1 s of imports, kept out of `derive --help`
    from derive.experiments.tables import write_report

    text = build_nas_report(args.study, args.eval, command_for(args.study, args.eval, args.out))
    print(write_report(args.out, text))
    return 0
