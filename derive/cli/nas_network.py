"""`derive nas network GENOTYPE --out DIR`: the evaluation network of a genotype, as PyTorch code."""

from __future__ import annotations

import argparse

from derive.cli.nas_sizes import add_size_options

DESCRIPTION = """\
Write DIR/<name>.py (and log "wrote DIR/<name>.py"): readable PyTorch code of the genotype's normal and reduction cells and of
DARTS's evaluation network (NetworkCIFAR: stem, cells with reductions at cells//3 and 2·cells//3,
auxiliary head at 2·cells//3, drop-path that leaves the identities ±x alone, global pool, linear),
generated through the Jinja template templates/nas_network.py.j2. The file needs only torch and
the standard library (the operations its cells use are defined in it). It defines
create_model(num_classes=10, *, channels, cells, auxiliary, drop_path), so `derive train DIR/<name>.py`
trains it (SCIS §9.3's evaluation: `--recipe darts-eval`).

GENOTYPE is a built-in genotype (darts_v1, darts_v2), a genotype.json file, or a run directory of
`derive nas search` holding one. <name> is the built-in's name, else the file's stem (the run
directory's name for RUN_DIR/genotype.json), made a valid Python identifier.
"""

EPILOG = """\
examples:
  derive nas network darts_v2 --out nets/                      writes nets/darts_v2.py (36 channels, 20 cells)
  derive nas network runs/hb/genotype.json --out nets/         writes nets/hb.py
  derive nas network darts_v2 --out nets/ --channels 16 --cells 8
  derive train nets/darts_v2.py --recipe darts-eval --dataset cifar10 --data-dir ~/data --out runs/v2
exit status: 0 written, 2 bad input (one line on stderr, nothing written)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive nas network`."""
    parser = subparsers.add_parser(
        "network",
        help="generate the evaluation network of a genotype (DARTS NetworkCIFAR) as PyTorch code",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "genotype", metavar="GENOTYPE", help="built-in name, genotype.json, or a run directory"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    add_size_options(parser, cells=20, channels=36, what="the network (DARTS: 20, 36)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from derive.nas.codegen import write_nas_network  # deferred: imports torch and SymPy

    write_nas_network(
        args.genotype, args.out, channels=args.channels, cells=args.cells
    )  # logs "wrote PATH"
    return 0
