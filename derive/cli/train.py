"""`derive train MODEL --dataset cifar10|cifar100 --data-dir DIR --out RUN_DIR`: the papers' CIFAR recipe."""

from __future__ import annotations

import argparse
import sys

from derive.cli.argtypes import number
from derive.cli.explicit import explicit, track_explicit
from derive.limits import (
    CUTOUT,
    EVAL_BATCH,
    PAD,
    PROGRESS_INTERVAL,
    SEED,
    TRAIN_BATCH,
    TRAIN_EPOCHS,
)

DESCRIPTION = """\
Train a model on CIFAR-10 or CIFAR-100 with the papers' recipe (SCIS'23 appendix D, after DenseNet):
SGD, Nesterov momentum 0.9, weight decay 1e-4, batch 64, 300 epochs, lr 0.1 divided by 10 at 50 % and
75 % of the epochs, per-channel mean/std normalization (computed from the training images), pad 4 +
random 32x32 crop + horizontal flip, He init for convolutions and Xavier for the classifier.
Every choice below is an option; the run records all of them in RUN_DIR/summary.json.

--recipe darts-eval instead trains as SCIS §9.3 evaluates a searched cell (DARTS train.py): batch 96,
600 epochs, SGD lr 0.025 momentum 0.9 (no Nesterov), weight decay 3e-4, cosine lr to 0, cutout 16,
auxiliary loss weight 0.4, drop-path 0.2 rising linearly over the epochs, gradient clipping 5,
PyTorch's default init, black padding. Options given explicitly override the recipe's values.

MODEL is a zoo name (resnet56, hbnet56, densenet40, agdnet40, ...) or a .py file that defines
create_model(num_classes), such as the conv code written by `derive network`.

The images stay on the device as uint8; each batch is normalized, cropped and flipped there.
On CUDA: bf16 autocast, channels_last, cudnn.benchmark (each an option), --compile for torch.compile.

RUN_DIR receives, after every epoch and each atomically: checkpoint.pt (model, optimizer, scheduler,
RNG states, metrics history), metrics.csv (epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds;
accuracies are fractions in [0, 1], lr is the one used in that epoch, seconds cover training and
evaluation) and summary.json (final and best test error, parameters, FLOPs, device, versions, options).
"""

EPILOG = """\
examples:
  derive train hbnet56 --dataset cifar10 --data-dir ~/data --out runs/hbnet56-c10
  derive train hbnet56 --dataset cifar10 --data-dir ~/data --out runs/hbnet56-c10 --resume
  derive train resnet56 --dataset cifar100 --data-dir ~/data --download --out runs/r56-c100
  derive train generated/heavyball_conv.py --dataset cifar10 --data-dir ~/data --out runs/hb --epochs 30
  derive train agdnet40 --dataset cifar10 --data-dir ~/data --out runs/agd40 --no-augment   (non-"+" column)
  derive nas network darts_v2 --out nets/ && derive train nets/darts_v2.py --recipe darts-eval --dataset cifar10 --data-dir ~/data --out runs/v2
  derive plot runs/hbnet56-c10 runs/r56-c10 --out curves.png

data: DIR/cifar-10-batches-py/{data_batch_1..5,test_batch} or DIR/cifar-100-python/{train,test}
(the official python layout; DIR may also be the cifar-10-batches-py folder itself).
environment: DERIVE_CIFAR_URL replaces the download base URL (a mirror); DERIVE_CIFAR_MD5 replaces the
published md5 (only for a mirror that repackages the tarball, or tests).
exit status: 0 done, 2 bad input (one line on stderr, nothing written), 3 the training loss became
NaN/inf (RUN_DIR keeps the last good checkpoint), 130 interrupted by Ctrl-C, 143 stopped by SIGTERM (both record "interrupted";
resume with --resume).
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the description's line breaks; show a default where there is one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
            and "default" not in text
        ):
            text += " (default: %(default)s)"
        return text


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated fractions like 0.5,0.75, got {text!r}"
        ) from None
    if not values or not all(0 < v < 1 for v in values) or list(values) != sorted(values):
        raise argparse.ArgumentTypeError(
            f"expected increasing fractions between 0 and 1, got {text!r}"
        )
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive train` and its options."""
    p = subparsers.add_parser(
        "train",
        help="train a model on CIFAR-10/100 with the papers' recipe",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    nonneg = number(float, "a number >= 0", 0.0)
    p.add_argument(
        "model",
        metavar="MODEL",
        help="zoo model name or path to a .py file defining create_model(num_classes)",
    )
    g = p.add_argument_group("data and run directory")
    g.add_argument(
        "--dataset", choices=("cifar10", "cifar100"), default="cifar10", help="which CIFAR"
    )
    g.add_argument(
        "--data-dir", required=True, metavar="DIR", help="folder holding the official python layout"
    )
    g.add_argument(
        "--out", required=True, metavar="RUN_DIR", help="run directory (created if missing)"
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in RUN_DIR after its last completed epoch (a larger --epochs "
        "extends it; the epochs left follow the schedule for the new total)",
    )
    g.add_argument(
        "--force", action="store_true", help="start over, deleting RUN_DIR's previous run files"
    )
    g.add_argument(
        "--download",
        action="store_true",
        help="fetch the official tarball into DIR if the data is missing (md5 checked)",
    )
    g.add_argument(
        "--download-url",
        metavar="BASE",
        default=None,
        help="base URL to download from (default: $DERIVE_CIFAR_URL or https://www.cs.toronto.edu/~kriz)",
    )
    g = p.add_argument_group("recipe (defaults: SCIS'23 appendix D)")
    g.add_argument(
        "--epochs",
        type=number(int, "a positive integer", limit=TRAIN_EPOCHS),
        default=300,
        metavar="N",
        help="training epochs",
    )
    g.add_argument(
        "--batch-size",
        type=number(int, "a positive integer", limit=TRAIN_BATCH),
        default=64,
        metavar="B",
        help="training batch size (memory is checked before the run)",
    )
    g.add_argument("--lr", type=nonneg, default=0.1, help="initial learning rate")
    g.add_argument(
        "--lr-milestones",
        type=_fractions,
        default="0.5,0.75",
        metavar="F,F",
        help="fractions of the epochs after which the lr is multiplied by --lr-gamma (epoch floor(F*N)+1 is the first at the lower lr; never epoch 1)",
    )
    g.add_argument("--lr-gamma", type=nonneg, default=0.1, help="lr factor at each milestone")
    g.add_argument("--momentum", type=nonneg, default=0.9, help="SGD momentum")
    g.add_argument(
        "--nesterov", action=argparse.BooleanOptionalAction, default=True, help="Nesterov momentum"
    )
    g.add_argument(
        "--weight-decay", type=nonneg, default=1e-4, help="L2 weight decay (on every parameter)"
    )
    g.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pad + random crop + flip; --no-augment gives the papers' columns without '+'",
    )
    g.add_argument(
        "--pad",
        type=number(int, "an integer >= 0", limit=PAD),
        default=4,
        help="padding on each side before the random 32x32 crop",
    )
    g.add_argument(
        "--pad-fill",
        choices=("mean", "black"),
        default="mean",
        help="padding value: 'mean' = zero after normalization, as the DenseNet/fb.resnet.torch code the papers follow; 'black' = zero pixels, as torchvision's RandomCrop(32, padding=4)",
    )
    g.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="random horizontal flip (with --augment)",
    )
    g.add_argument(
        "--paper-init",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="He-normal convolutions, Xavier classifier; --no-paper-init keeps the model's own init",
    )
    g.add_argument(
        "--seed",
        type=number(int, "an integer >= 0", limit=SEED),
        default=0,
        metavar="S",
        help="seed of the init, and with the epoch number, of each epoch's order, crops and flips",
    )
    g = p.add_argument_group(
        "DARTS evaluation (SCIS §9.3; all set by --recipe darts-eval, explicit options override it)"
    )
    g.add_argument(
        "--recipe",
        choices=("appendix-d", "darts-eval"),
        default="appendix-d",
        help="appendix-d: the manual designs' recipe above; darts-eval: the searched cells' "
        "evaluation (values in the description)",
    )
    g.add_argument(
        "--lr-schedule",
        choices=("step", "cosine"),
        default="step",
        help="step: x --lr-gamma at --lr-milestones; cosine: lr (1 + cos(pi e/N))/2 after e of N "
        "epochs, to 0 (darts-eval: cosine)",
    )
    g.add_argument(
        "--cutout",
        type=number(int, "an integer >= 0", limit=CUTOUT),
        default=0,
        metavar="L",
        help="zero an LxL square of each training image after normalization, centred uniformly, "
        "clipped at the border; 0 off (darts-eval: 16)",
    )
    g.add_argument(
        "--auxiliary-weight",
        type=nonneg,
        default=0.0,
        metavar="W",
        help="loss CE + W CE(auxiliary head), the model built with create_model(..., "
        "auxiliary=True); 0 off, at most 1 so the main loss dominates (darts-eval: 0.4)",
    )
    g.add_argument(
        "--drop-path",
        type=nonneg,
        default=0.0,
        metavar="P",
        help="drop-path probability rising linearly, P (e-1)/N in epoch e of N, set as the model's "
        "drop_path_prob; 0 off, below 1 as kept paths are scaled by 1/(1-P) (darts-eval: 0.2)",
    )
    g.add_argument(
        "--grad-clip",
        type=nonneg,
        default=0.0,
        metavar="C",
        help="clip the gradients' total 2-norm to C before each step; 0 off (darts-eval: 5)",
    )
    g = p.add_argument_group("how to compute (a resumed run may change these)")
    g.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA if available"
    )
    g.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: bf16 autocast on CUDA, fp32 on the CPU",
    )
    g.add_argument(
        "--memory-format",
        choices=("auto", "contiguous", "channels_last"),
        default="auto",
        help="auto: channels_last on CUDA",
    )
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (slow first epoch, faster after)",
    )
    g.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic kernels, no cudnn.benchmark (slower on CUDA)",
    )
    g.add_argument(
        "--eval-batch-size",
        type=number(int, "a positive integer", limit=EVAL_BATCH),
        default=1000,
        metavar="B",
        help="batch size for evaluating the test set",
    )
    g.add_argument(
        "--progress-interval",
        type=number(float, "a number >= 0", limit=PROGRESS_INTERVAL),
        default=None,
        metavar="SECONDS",
        help="seconds between progress lines within an epoch (default: 1 on a terminal, 30 otherwise; 0: none)",
    )
    p.set_defaults(run=run)
    track_explicit(p)  # a --recipe fills in only the options not given


def build_config(args: argparse.Namespace) -> object:
    """The TrainConfig of the parsed arguments: the --recipe preset, overridden by explicit options."""
    from derive.train.recipes import RECIPE_FIELDS, recipe_config

    options = dict(
        model=args.model,
        data_dir=args.data_dir,
        out=args.out,
        dataset=args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        nesterov=args.nesterov,
        weight_decay=args.weight_decay,
        lr_milestones=args.lr_milestones,
        lr_gamma=args.lr_gamma,
        augment=args.augment,
        pad=args.pad,
        pad_fill=args.pad_fill,
        flip=args.flip,
        paper_init=args.paper_init,
        seed=args.seed,
        eval_batch_size=args.eval_batch_size,
        device=args.device,
        precision=args.precision,
        memory_format=args.memory_format,
        compile=args.compile,
        deterministic=args.deterministic,
        resume=args.resume,
        force=args.force,
        download=args.download,
        download_url=args.download_url,
        progress_interval=args.progress_interval,
        lr_schedule=args.lr_schedule,
        cutout=args.cutout,
        auxiliary_weight=args.auxiliary_weight,
        drop_path=args.drop_path,
        grad_clip=args.grad_clip,
    )
    given = explicit(args)
    for name in RECIPE_FIELDS - given:
        options.pop(name, None)  # the recipe's value (or TrainConfig's default) applies
    return recipe_config(args.recipe, **options)


def run(args: argparse.Namespace) -> int:
    """Build the config, train, print where the results are; exit 3 if the loss diverged."""
    from derive.train.loop import TrainingDiverged, run_training
    from derive.train.progress import Progress

    config = build_config(args)
    progress = Progress(args.progress_interval, enabled=not args.quiet)
    try:
        summary = run_training(config, progress=progress)
    except TrainingDiverged as exc:
        print(f"derive: error: {exc}", file=sys.stderr)
        return TrainingDiverged.exit_code
    final, best = summary["final_test_error_percent"], summary["best_test_error_percent"]
    print(
        f"{args.out}: {summary['epochs_completed']} epochs, test error final {final:.2f} %, "
        f"best {best:.2f} % (epoch {summary['best_epoch']}), {summary['wall_time_seconds']:.0f} s"
    )
    return 0
