"""`derive nas search`: DARTS over a search space derived from an optimization algorithm (SCIS §9)."""

from __future__ import annotations

import argparse
import json

from derive.cli.argtypes import add_threads_option
from derive.cli.nas_sizes import add_size_options
from derive.cli.network import parse_coefficients
from derive.cli.options_parser import HelpLayout, add_declared, all_values
from derive.errors import UserError
from derive.nas.searchconfig import IMAGE_SIZES, SearchConfig
from derive.train.progress import Progress

DESCRIPTION = """\
Search a cell with DARTS (Liu et al. 2019) in a search space derived from an optimization algorithm's
layer recurrence (SCIS §9), and write RUN_DIR/genotype.json for `derive nas network`.

SPACE: darts (SCIS (19): every predecessor, DARTS's 8 operations); heavyball or hb (SCIS (15), from
heavy ball's z_{k+1} = T(z_k) + βz_k − βz_{k−1}); agd (the paper's Search space-AGD, SCIS (20)-(21),
derived from the all-history AGD `nesterov2` — NOTE: `derive network --algo agd` means `nesterov`
(3), but for --space, agd is the paper's space); or any `derive network --algo` value (gd, nesterov,
nesterov_sc, triple_momentum, a .toml spec, ...), whose terms become the cell's mixed edges
(docs/nas.md gives the rule). `--show` prints the derived cell without searching.

Defaults are SCIS §9.3: CIFAR-10 training set split in halves (weights / architecture; the test set
is never used), weights by SGD lr 0.025 cosine-annealed to 0 (DARTS used 0.001: --lr-min 0.001),
momentum 0.9, weight decay 3e-4, gradient clipping 5; α and β by Adam lr 3e-4, betas (0.5, 0.999),
weight decay 1e-3, zero init; 8 cells, 16 channels, batch 64, 50 epochs, first order.

Memory is checked before the supernet is built or any data is read: a lower bound (the weights with
their gradients and momentum, and one batch's operation outputs, from --cells, --channels,
--batch-size, --image-size and --order) above the device's free memory is refused (exit 2).

RUN_DIR receives after every epoch, each atomically: checkpoint.pt, metrics.csv (epoch, train_loss,
train_acc, val_loss, val_acc, arch_loss, lr, seconds, genotype as JSON), genotype.json and
summary.json (every option, device, versions, search cost in CPU- or GPU-hours); at the end
cells.dot and cells.png (the cells, as the papers' figures).
"""

EPILOG = """\
examples:
  derive nas search --space heavyball --show
  derive nas search --space agd --show --format json
  derive nas search --space heavyball --hb-init --dataset cifar10 --data-dir ~/data --out runs/hb-init
  derive nas search --space darts --order 2 --dataset cifar10 --data-dir ~/data --out runs/darts2
  derive nas search --space agd --dataset cifar10 --data-dir ~/data --out runs/agd --resume
  derive nas search --space hb --data-dir ~/data --out runs/tiny --cells 5 --channels 8 \\
      --image-size 16 --limit-images 2000 --batch-size 32 --epochs 10     (a CPU-sized search)

exit status: 0 done, 2 bad input (one line on stderr, nothing written), 3 the loss became NaN/inf
(RUN_DIR keeps the last good checkpoint), 130 interrupted (continue with --resume).
"""


__all__ = ["IMAGE_SIZES", "register"]  # IMAGE_SIZES: the sizes --image-size takes (--help)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.default not in (None, False, argparse.SUPPRESS, [])
            and action.option_strings
            and "default" not in text
        ):
            text += " (default: %(default)s)"
        return text


HELP_GROUPS: HelpLayout = (
    ("space", None, ("--space", "--show", "--format", "--coef", "--ops")),
    (
        "architecture initialisation",
        None,
        ("--hb-init", "--algo-init", "--alpha-init", "--init-weight"),
    ),
    (
        "data and run directory",
        None,
        (
            "--dataset",
            "--data-dir",
            "--out",
            "--resume",
            "--force",
            "--train-portion",
            "--limit-images",
            "--image-size",
            "--augment",
        ),
    ),
    (
        "recipe (defaults: SCIS §9.3)",
        None,
        (
            "--epochs",
            "--cells",  # and --channels (derive.cli.nas_sizes)
            "--batch-size",
            "--seed",
            "--order",
            "--lr",
            "--lr-min",
            "--momentum",
            "--weight-decay",
            "--grad-clip",
            "--arch-lr",
            "--arch-weight-decay",
        ),
    ),
    (
        "how to compute (a resumed run may change these)",
        None,
        ("--device", "--eval-batch-size", "--plot", "--progress-interval", "--threads"),
    ),
)
"""`derive nas search --help`'s groups in order; the options are declared on SearchConfig's
fields (derive.nas.searchconfig), except those that only ask to show the space (--show,
--format), the coefficients (--coef), the sizes shared with `derive nas network` and --threads."""


def _add_show(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--show", action="store_true", help="print the derived cell and exit")


def _add_format(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--format", choices=("text", "json"), default="text", help="for --show")


def _add_coef(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--coef",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an algorithm coefficient (e.g. beta=0.5, within its bounds); repeatable",
    )


def _add_sizes(group: argparse._ArgumentGroup) -> None:
    defaults = SearchConfig.__dataclass_fields__
    cells, channels = defaults["cells"].default, defaults["channels"].default
    add_size_options(group, cells=cells, channels=channels, what="the supernet")  # type: ignore[arg-type]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive nas search`, its options built from SearchConfig's declarations."""
    p = subparsers.add_parser(
        "search",
        help="search a cell with DARTS in a space derived from an algorithm",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    extras = {
        "--show": _add_show,
        "--format": _add_format,
        "--coef": _add_coef,
        "--cells": _add_sizes,
        "--threads": add_threads_option,
    }
    add_declared(p, SearchConfig, HELP_GROUPS, extras)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Show the space, or search it; exit 3 if the loss diverged."""
    import sys

    coefficients = parse_coefficients(args.coef)
    if args.show:
        from derive.nas.spaces import resolve_space  # deferred: imports torch and SymPy
        from derive.nas.supernet import with_ops  # deferred: imports torch and SymPy

        space = with_ops(resolve_space(args.space, coefficients), args.ops)
        # deferred: imports torch and SymPy
        from derive.nas.archinit import start_coefficients, start_name

        start = start_name(args.hb_init, args.algo_init)
        if start is not None:  # refused here as the search would refuse it
            from derive.nas.spaces import coefficient_weights  # deferred: imports torch and SymPy

            starts = start_coefficients(space, start)
        if args.format == "json":
            print(json.dumps(space.to_json(), indent=2, ensure_ascii=False, default=str))
        else:
            lines = space.describe()
            if start is not None:
                flag = "--hb-init" if start == "hb" else "--algo-init"
                lines += [""]
                for i, c in sorted(starts.items()):
                    mix = coefficient_weights(c)
                    lines.append(
                        f"start ({flag}): state edge {space.kinds[i].term} at c = {c:g}: "
                        f"skip_connect {mix['skip_connect']:g} − neg_skip_connect "
                        f"{mix['neg_skip_connect']:g} of the edge's ±identity share"
                    )
            print("\n".join(lines))
        return 0
    missing = [
        flag for flag, value in (("--data-dir", args.data_dir), ("--out", args.out)) if not value
    ]
    if missing:
        raise UserError(f"nas search: {' and '.join(missing)} required (or --show)")
    from derive.nas.search import run_search  # deferred: imports torch and SymPy
    from derive.train.loop import TrainingDiverged  # deferred: imports torch

    config = SearchConfig(
        **all_values(args, SearchConfig),  # type: ignore[arg-type]
        cells=args.cells,
        channels=args.channels,
        coefficients=coefficients,
    )
    progress = Progress(args.progress_interval, enabled=not args.quiet)
    try:
        summary = run_search(config, progress=progress)
    except TrainingDiverged as exc:
        print(f"derive: error: {exc}", file=sys.stderr)
        return TrainingDiverged.exit_code
    cost = summary["search_cost"]
    print(
        f"{args.out}: {summary['epochs_completed']} epochs of space {args.space}, architecture-half "
        f"accuracy {100 * float(summary['final_val_acc']):.2f} %, {cost['hours']:.3f} {cost['unit']}; "
        f"genotype in {args.out}/genotype.json"
    )
    return 0
