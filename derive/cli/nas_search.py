"""`derive nas search`: DARTS over a search space derived from an optimization algorithm (SCIS §9)."""

from __future__ import annotations

import argparse
import json

from derive.cli.argtypes import add_threads_option, number
from derive.cli.nas_sizes import add_size_options
from derive.errors import UserError

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


# The image sizes of derive.nas.searchdata, restated so `derive --help` need not import torch
# (tests/test_nas_search_cli.py checks that they agree).
IMAGE_SIZES = (8, 12, 16, 20, 24, 28, 32)


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


def _order(text: str) -> int:
    if text not in ("1", "2"):
        raise argparse.ArgumentTypeError(f"expected 1 or 2, got {text!r}")
    return int(text)


def _ops(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated operation names, got {text!r}")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive nas search`."""
    p = subparsers.add_parser(
        "search",
        help="search a cell with DARTS in a space derived from an algorithm",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    pos_int = number(int, "a positive integer", 1)
    nonneg_int = number(int, "an integer >= 0", 0)
    nonneg = number(float, "a number >= 0", 0.0)
    g = p.add_argument_group("space")
    g.add_argument(
        "--space",
        required=True,
        metavar="SPACE",
        help="darts, heavyball (hb), agd (the paper's AGD space, from nesterov2), or any "
        "`derive network --algo` value incl. a .toml spec",
    )
    g.add_argument("--show", action="store_true", help="print the derived cell and exit")
    g.add_argument("--format", choices=("text", "json"), default="text", help="for --show")
    g.add_argument(
        "--coef",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an algorithm coefficient (e.g. beta=0.5, within its bounds); repeatable",
    )
    g.add_argument(
        "--ops",
        type=_ops,
        default=None,
        metavar="OP,OP",
        help="the candidate operations (a subset of SCIS Table 3; default: the space's own, DARTS's 8 "
        "for darts and all 9 otherwise)",
    )
    g = p.add_argument_group("architecture initialisation")
    g.add_argument(
        "--hb-init",
        action="store_true",
        help="SCIS §9.1 on the heavy-ball space: ō₂ on identity, the x_{t−2} edge on negative "
        "identity, ō₁ random, so the initial cell is x_t = F(x_{t−1}) + x_{t−1} − x_{t−2} (18)",
    )
    g.add_argument(
        "--algo-init",
        action="store_true",
        help="start every state edge at the algorithm's own fixed coefficient c (|c| <= 1, as "
        "w_skip − w_neg = c); refused where no fixed coefficient exists",
    )
    g.add_argument(
        "--alpha-init",
        choices=("zero", "randn"),
        default="zero",
        help="α and β otherwise: zero (SCIS) or 1e-3·randn (DARTS)",
    )
    g.add_argument(
        "--init-weight",
        type=nonneg,
        default=0.99,
        metavar="W",
        help="softmax weight of the chosen ops under --hb-init/--algo-init, in [0.5, 1): a softmax of "
        "finite logits is never one-hot; 0.99 is a margin of ~6.7 logits, which a full 50-epoch search "
        "can undo",
    )
    g = p.add_argument_group("data and run directory")
    g.add_argument("--dataset", choices=("cifar10",), default="cifar10", help="the dataset")
    g.add_argument("--data-dir", metavar="DIR", help="folder holding the official python layout")
    g.add_argument("--out", metavar="RUN_DIR", help="run directory (created if missing)")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the search in RUN_DIR after its last epoch (bit-exact; a larger --epochs "
        "extends it, the epochs left following the cosine of the new total)",
    )
    g.add_argument("--force", action="store_true", help="start over, deleting RUN_DIR's run files")
    g.add_argument(
        "--train-portion",
        type=nonneg,
        default=0.5,
        metavar="F",
        help="fraction of the training images that train the weights; the rest train α/β",
    )
    g.add_argument(
        "--limit-images",
        type=pos_int,
        default=None,
        metavar="N",
        help="use only the first N training images (>= 4) before the split (small budgets)",
    )
    g.add_argument(
        "--image-size",
        type=pos_int,
        default=32,
        metavar="S",
        help=f"resample the images to SxS, S in {{{','.join(map(str, IMAGE_SIZES))}}} (multiples of 4: "
        "both reductions halve it; CPU budgets)",
    )
    g.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pad + random crop + flip on both halves (DARTS)",
    )
    g = p.add_argument_group("recipe (defaults: SCIS §9.3)")
    g.add_argument("--epochs", type=pos_int, default=50, metavar="N", help="search epochs")
    add_size_options(g, cells=8, channels=16, what="the supernet")
    g.add_argument(
        "--batch-size",
        type=pos_int,
        default=64,
        metavar="B",
        help="batch of each half, >= 2 (BatchNorm)",
    )
    g.add_argument(
        "--seed", type=nonneg_int, default=0, metavar="S", help="init and batch-order seed"
    )
    g.add_argument(
        "--order",
        type=_order,
        default=1,
        metavar="{1,2}",
        help="1: first order (SCIS); 2: unrolled",
    )
    g.add_argument("--lr", type=nonneg, default=0.025, help="initial weight learning rate")
    g.add_argument(
        "--lr-min", type=nonneg, default=0.0, help="cosine floor (SCIS: 0; DARTS: 0.001)"
    )
    g.add_argument("--momentum", type=nonneg, default=0.9, help="weight SGD momentum, < 1")
    g.add_argument("--weight-decay", type=nonneg, default=3e-4, help="weight L2 decay")
    g.add_argument("--grad-clip", type=nonneg, default=5.0, help="weight gradient norm clip")
    g.add_argument("--arch-lr", type=nonneg, default=3e-4, help="Adam lr of α and β")
    g.add_argument(
        "--arch-weight-decay", type=nonneg, default=1e-3, help="Adam L2 decay of α and β"
    )
    g = p.add_argument_group("how to compute (a resumed run may change these)")
    g.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA if available"
    )
    g.add_argument(
        "--eval-batch-size",
        type=pos_int,
        default=500,
        metavar="B",
        help="batch size of the per-epoch evaluation on the architecture half",
    )
    g.add_argument(
        "--plot", action=argparse.BooleanOptionalAction, default=True, help="write cells.dot/.png"
    )
    g.add_argument(
        "--progress-interval",
        type=nonneg,
        default=None,
        metavar="SECONDS",
        help="seconds between progress lines (default: 1 on a terminal, 30 otherwise; 0: none)",
    )
    add_threads_option(g)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Show the space, or search it; exit 3 if the loss diverged."""
    import sys

    from derive.cli.network import parse_coefficients

    coefficients = parse_coefficients(args.coef)
    if args.show:
        from derive.nas.spaces import resolve_space
        from derive.nas.supernet import with_ops

        space = with_ops(resolve_space(args.space, coefficients), args.ops)
        from derive.nas.archinit import start_coefficients, start_name

        start = start_name(args.hb_init, args.algo_init)
        if start is not None:  # refused here as the search would refuse it
            from derive.nas.spaces import coefficient_weights

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
    from derive.nas.search import run_search
    from derive.nas.searchconfig import SearchConfig
    from derive.train.loop import TrainingDiverged
    from derive.train.progress import Progress

    config = SearchConfig(
        space=args.space,
        data_dir=args.data_dir,
        out=args.out,
        dataset=args.dataset,
        hb_init=args.hb_init,
        algo_init=args.algo_init,
        order=args.order,
        epochs=args.epochs,
        cells=args.cells,
        channels=args.channels,
        batch_size=args.batch_size,
        seed=args.seed,
        lr=args.lr,
        lr_min=args.lr_min,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip,
        arch_lr=args.arch_lr,
        arch_weight_decay=args.arch_weight_decay,
        alpha_init=args.alpha_init,
        init_weight=args.init_weight,
        train_portion=args.train_portion,
        image_size=args.image_size,
        limit_images=args.limit_images,
        augment=args.augment,
        ops=args.ops,
        coefficients=coefficients,
        eval_batch_size=args.eval_batch_size,
        device=args.device,
        resume=args.resume,
        force=args.force,
        plot=args.plot,
        progress_interval=args.progress_interval,
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
