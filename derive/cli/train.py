"""`derive train MODEL --dataset cifar10|cifar100|imagenet --data-dir DIR --out RUN_DIR`: the papers' recipes,
on one process or, under torchrun, on many (DistributedDataParallel)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from derive.cli.argtypes import add_threads_option, number
from derive.cli.explicit import explicit, track_explicit
from derive.errors import UserError
from derive.limits import (
    COLOR_JITTER,
    CUTOUT,
    DIST_TIMEOUT,
    EVAL_BATCH,
    IMAGE_SIZE,
    LIGHTING,
    PAD,
    PROGRESS_INTERVAL,
    SEED,
    TRAIN_BATCH,
    TRAIN_EPOCHS,
    WARMUP_STEPS,
    WORKERS,
)

if TYPE_CHECKING:
    from derive.train.config import TrainConfig

log = logging.getLogger(__name__)

DESCRIPTION = """\
Train a model on CIFAR-10 or CIFAR-100 with the papers' recipe (SCIS'23 appendix D, after DenseNet):
SGD, Nesterov momentum 0.9, weight decay 1e-4, batch 64, 300 epochs, lr 0.1 divided by 10 at 50 % and
75 % of the epochs, per-channel mean/std normalization (computed from the training images), pad 4 +
random 32x32 crop + horizontal flip, He init for convolutions and Xavier for the classifier.
Every choice below is an option; the run records all of them in RUN_DIR/summary.json.

--dataset imagenet reads DIR/train/<class>/*.JPEG and DIR/val/<class>/*.JPEG (the classes are the
folder names) with the papers' ImageNet recipe as its defaults: the same SGD, 100 epochs, batch 256,
lr 0.1 x (batch / 256) (linear scaling with the global batch), divided by 10 after epochs 30, 60 and
90; RandomResizedCrop 224 + flip + fb.resnet.torch colour jitter 0.4 and PCA lighting 0.1 (training),
resize 256 + centre crop 224 (validation); top-1 and top-5 error are recorded.

Several GPUs or machines: launch the same command with torchrun (NCCL on CUDA, gloo on the CPU):
  torchrun --standalone --nproc_per_node=4 -m derive train ...
--batch-size is the global batch, split evenly over the processes; only rank 0 writes RUN_DIR, and a
run may be resumed on another number of processes.

--recipe darts-eval instead trains as SCIS §9.3 evaluates a searched cell (DARTS train.py): batch 96,
600 epochs, SGD lr 0.025 momentum 0.9 (no Nesterov), weight decay 3e-4, cosine lr to 0, cutout 16,
auxiliary loss weight 0.4, drop-path 0.2 rising linearly over the epochs, gradient clipping 5,
PyTorch's default init, black padding. Options given explicitly override the recipe's values.

MODEL is a zoo name (resnet56, hbnet56, densenet40, agdnet40, ...) or a .py file that defines
create_model(num_classes), such as the conv code written by `derive network`; --model-arg passes
its other keyword arguments (a generated file's docstring shows those of the papers' networks).

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
  derive train generated/heavyball_conv.py --model-arg depth=110 --model-arg coefficients.beta1=1 --model-arg coefficients.beta2=-1 --data-dir ~/data --out runs/hbnet110   (HBNet-110)
  derive train agdnet40 --dataset cifar10 --data-dir ~/data --out runs/agd40 --no-augment   (non-"+" column)
  derive train hbnet50 --dataset imagenet --data-dir /data/imagenet --out runs/hbnet50-in
  torchrun --standalone --nproc_per_node=4 -m derive train hbnet50 --dataset imagenet --data-dir /data/imagenet --out runs/hbnet50-in
  derive nas network darts_v2 --out nets/ && derive train nets/darts_v2.py --recipe darts-eval --dataset cifar10 --data-dir ~/data --out runs/v2
  derive plot runs/hbnet56-c10 runs/r56-c10 --out curves.png

data: DIR/cifar-10-batches-py/{data_batch_1..5,test_batch} or DIR/cifar-100-python/{train,test}
(the official python layout; DIR may also be the cifar-10-batches-py folder itself).
environment: DERIVE_CIFAR_URL replaces the download base URL (a mirror); DERIVE_CIFAR_MD5 replaces the
published md5 (only for a mirror that repackages the tarball, or tests).
ImageNet data: DIR/train/<wnid>/*.JPEG and DIR/val/<wnid>/*.JPEG (val sorted into class folders).
exit status: 0 done, 2 bad input (one line on stderr, nothing written), 3 the training loss became
NaN/inf (RUN_DIR keeps the last good checkpoint), 4 a distributed run lost a rank (RUN_DIR keeps the
last completed epoch), 130 interrupted by Ctrl-C, 143 stopped by SIGTERM (both record "interrupted";
resume with --resume). Under torchrun every rank exits with its status and torchrun itself reports
the failed ranks.
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


def _factor(text: str) -> float:
    value = number(float, "a number in (0, 1]", 0.0)(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _percent(text: str) -> float:
    value = number(float, "a percentage strictly between 0 and 100", 0.0)(text)
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(
            f"expected a percentage strictly between 0 and 100, got {text!r}"
        )
    return value


HELP_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "data",
        "which images, and how each training image is augmented (ImageNet: from --image-size on)",
        (
            "--dataset",
            "--data-dir",
            "--download",
            "--download-url",
            "--augment",
            "--pad",
            "--pad-fill",
            "--flip",
            "--augment-per",
            "--cutout",
            "--image-size",
            "--color-jitter",
            "--lighting",
        ),
    ),
    (
        "run folder",
        "what RUN_DIR receives and when (a resumed run may change these)",
        (
            "--out",
            "--resume",
            "--force",
            "--checkpoint-every",
            "--log-steps",
            "--progress-interval",
        ),
    ),
    (
        "model",
        "how MODEL is built; the options after --model-arg are variants for the stability study\n"
        "(not in the papers' recipe; see docs/training.md)",
        ("--model-arg", "--paper-init", "--shortcut", "--conv-init", "--classifier-init"),
    ),
    (
        "recipe",
        "defaults: SCIS'23 appendix D (ImageNet: the papers' ImageNet recipe); --recipe darts-eval\n"
        "sets the values in the description, and options given explicitly override it",
        (
            "--recipe",
            "--epochs",
            "--batch-size",
            "--momentum",
            "--nesterov",
            "--weight-decay",
            "--seed",
            "--auxiliary-weight",
            "--drop-path",
            "--grad-clip",
        ),
    ),
    (
        "schedule",
        "the learning rate over the run; the warm-up is not in the papers' recipe (off by default)",
        (
            "--lr",
            "--lr-schedule",
            "--lr-milestones",
            "--lr-gamma",
            "--warmup-steps",
            "--warmup-factor",
            "--warmup-until-error",
        ),
    ),
    (
        "hardware",
        "how to compute (a resumed run may change these)",
        (
            "--device",
            "--precision",
            "--memory-format",
            "--memory",
            "--compile",
            "--deterministic",
            "--eval-batch-size",
            "--workers",
            "--decode",
            "--sync-bn",
            "--dist-timeout",
            "--threads",
        ),
    ),
)
"""`derive train --help`'s groups, in order, each with its options in order (common ones first)."""


def arrange_help(
    parser: argparse.ArgumentParser, groups: tuple[tuple[str, str, tuple[str, ...]], ...]
) -> None:
    """Show `parser`'s options in `groups` (title, description, option names) in that order.

    Only --help changes (argparse prints each group's list of actions, and the usage line in the
    order of the parser's actions, reordered the same way); an option not named stays in the group
    it was added to, which is dropped once it has no option left.
    """
    actions = {a.option_strings[0]: a for a in parser._actions if a.option_strings}  # noqa: SLF001
    moved = {actions[name] for _, _, names in groups for name in names if name in actions}
    for group in parser._action_groups:  # noqa: SLF001 (argparse keeps no public list)
        group._group_actions[:] = [a for a in group._group_actions if a not in moved]  # noqa: SLF001
    parser._action_groups[2:] = [g for g in parser._action_groups[2:] if g._group_actions]  # noqa: SLF001
    for title, description, names in groups:
        group = parser.add_argument_group(title, description)
        group._group_actions.extend(actions[n] for n in names if n in actions)  # noqa: SLF001
    order = {
        id(a): i for i, a in enumerate(a for _, _, names in groups for a in map(actions.get, names))
    }
    parser._actions.sort(key=lambda a: order.get(id(a), -1))  # noqa: SLF001 (stable: -h first)


def _model_arg(text: str) -> str:
    """--model-arg NAME=VALUE, checked as text (derive.modelargs parses it the same way later)."""
    from derive.modelargs import parse_model_arg

    try:
        parse_model_arg(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--model-arg: ")) from None
    return text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive train` and its options."""
    from derive.train.config import AUGMENT_PER, INITS, SHORTCUTS
    from derive.train.options import ERROR_WINDOW

    p = subparsers.add_parser(
        "train",
        help="train a model on CIFAR-10/100 or ImageNet with the papers' recipe (torchrun: many GPUs)",
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
    p.add_argument(
        "--model-arg",
        action="append",
        type=_model_arg,
        default=None,
        metavar="NAME=VALUE",
        help="keyword argument for MODEL's create_model, repeatable: a bool (true/false), int, "
        "float or string, checked against its signature; NAME.KEY=VALUE sets one entry of a "
        "mapping argument (e.g. --model-arg depth=110 --model-arg coefficients.beta2=-1 for "
        "generated/heavyball_conv.py; its docstring lists the papers' networks). A zoo name takes "
        "none (num_classes comes from --dataset). Recorded in summary.json; --resume checks it",
    )
    g = p.add_argument_group("data and run directory")
    g.add_argument(
        "--dataset",
        choices=("cifar10", "cifar100", "imagenet"),
        default="cifar10",
        help="which dataset: a CIFAR in the official python layout, or an ImageNet folder tree",
    )
    g.add_argument(
        "--data-dir",
        required=True,
        metavar="DIR",
        help="folder holding the official CIFAR python layout, or ImageNet's train/ and val/",
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
        "--checkpoint-every",
        default="5",
        metavar="MINUTES|Nsteps",
        help="also write checkpoint.pt within an epoch, after this many minutes of wall time "
        "(default: 5; 0: only after each epoch) or every N optimizer steps (e.g. 200steps); "
        "Ctrl-C or SIGTERM writes one too, so --resume continues from the exact step",
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
        help="training epochs (default: 300; ImageNet: 100)",
    )
    g.add_argument(
        "--batch-size",
        type=number(int, "a positive integer", limit=TRAIN_BATCH),
        default=64,
        metavar="B",
        help="global training batch size, split evenly over the torchrun processes, which must divide it; memory is checked before the run (default: 64; ImageNet: 256)",
    )
    g.add_argument(
        "--lr",
        type=nonneg,
        default=0.1,
        help="initial learning rate (default: 0.1; ImageNet: 0.1 x batch/256)",
    )
    g.add_argument(
        "--lr-milestones",
        type=_fractions,
        default=(0.5, 0.75),
        metavar="F,F",
        help="fractions of the epochs after which the lr is multiplied by --lr-gamma (epoch floor(F*N)+1 is the first at the lower lr; never epoch 1) (default: 0.5,0.75; ImageNet: 0.3,0.6,0.9)",
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
        "warm-up and variants (not in the papers' recipe; all off by default; see docs/training.md)"
    )
    g.add_argument(
        "--warmup-steps",
        type=number(int, "an integer >= 0", limit=WARMUP_STEPS),
        default=0,
        metavar="N",
        help="train the first N optimizer steps at lr x --warmup-factor, then follow the schedule "
        "(0: no warm-up, the papers' recipe). He et al. 2016 for ResNet-110 (lr 0.01 until the training "
        "error is below 80 %%, about 400 iterations at batch 128): --warmup-factor 0.1 "
        "--warmup-until-error 80 --warmup-steps 400",
    )
    g.add_argument(
        "--warmup-factor",
        type=_factor,
        default=0.01,
        metavar="F",
        help="lr factor during the warm-up, in (0, 1] (a warm-up scales the lr down); "
        "He et al.'s lr 0.01 is the factor 0.1 of the papers' lr 0.1",
    )
    g.add_argument(
        "--warmup-until-error",
        type=_percent,
        default=None,
        metavar="PERCENT",
        help="end the warm-up early, after the first step at which the training error over the last "
        f"{ERROR_WINDOW} steps' batches is below PERCENT (strictly between 0 and 100); He et al.'s "
        "rule is 80, with --warmup-steps as the longest the warm-up may last",
    )
    g.add_argument(
        "--shortcut",
        choices=SHORTCUTS,
        default="model",
        help="'model': the model's own shortcuts (zero-pad shortcut A in the CIFAR ResNets/HBNets, "
        "as the papers); 'projection': 1x1 conv + BN (shortcut B) in place of each zero-pad one",
    )
    g.add_argument(
        "--conv-init",
        choices=INITS,
        default="paper",
        help="'paper': He-normal (fan-out) convolutions; 'torch': PyTorch's default "
        "(reset_parameters) for every convolution",
    )
    g.add_argument(
        "--classifier-init",
        choices=INITS,
        default="paper",
        help="'paper': Xavier-uniform classifier; 'torch': PyTorch's default for linear layers",
    )
    g.add_argument(
        "--augment-per",
        choices=AUGMENT_PER,
        default="image",
        help="'image': each image its own random crop and flip (the papers); 'batch': one crop "
        "offset and one flip for a whole batch",
    )
    g = p.add_argument_group("ImageNet (--dataset imagenet)")
    g.add_argument(
        "--image-size",
        type=number(int, "an integer >= 32", limit=IMAGE_SIZE),
        default=224,
        metavar="S",
        help="side of the training crop; validation resizes to S/0.875 and centre-crops S (sizes below 224 are for tests)",
    )
    g.add_argument(
        "--color-jitter",
        type=number(float, "a number >= 0", limit=COLOR_JITTER),
        default=0.4,
        metavar="F",
        help="fb.resnet.torch colour jitter: brightness, contrast and saturation each scaled by 1+U(-F,F), in random order; 0: off",
    )
    g.add_argument(
        "--lighting",
        type=number(float, "a number >= 0", limit=LIGHTING),
        default=0.1,
        metavar="F",
        help="AlexNet/fb.resnet.torch PCA lighting noise with standard deviation F; 0: off",
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
        "--memory",
        choices=("standard", "checkpoint", "reversible"),
        default="standard",
        help="activations kept for backward: standard (all); checkpoint (block inputs, each block "
        "recomputed once in backward; any generated model); reversible (the newest two states and "
        "each stage's input, inputs recomputed by the inverse step; invertible models only: "
        "prehbnet*); docs/memory.md",
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
        "--log-steps",
        action="store_true",
        help="also write RUN_DIR/steps.csv, a row per optimizer step: step,epoch,loss,acc,lr,grad_norm "
        "(plot it with derive plot --steps)",
    )
    g.add_argument(
        "--workers",
        type=number(int, "an integer >= 0", limit=WORKERS),
        default=None,
        metavar="N",
        help="ImageNet: JPEG-decoding DataLoader processes per rank (default: the CPUs / processes on this node, at most 8; 0: decode in the training process)",
    )
    g.add_argument(
        "--decode",
        choices=("auto", "workers", "device"),
        default="auto",
        help="ImageNet: where JPEGs are decoded: 'workers' (CPU, torchvision.io.decode_jpeg in the DataLoader processes) or 'device' (torchvision.io.decode_jpeg on the training device, nvJPEG on CUDA; the workers only read files); auto: workers",
    )
    g.add_argument(
        "--sync-bn",
        action="store_true",
        help="torchrun on CUDA: SyncBatchNorm, BatchNorm statistics over the global batch (default: per process, as the papers' 4-GPU runs)",
    )
    g.add_argument(
        "--dist-timeout",
        type=number(float, "seconds >= 10", limit=DIST_TIMEOUT),
        default=1800.0,
        metavar="SECONDS",
        help="torchrun: how long a rank waits for the others at a collective before the job fails",
    )
    g.add_argument(
        "--progress-interval",
        type=number(float, "a number >= 0", limit=PROGRESS_INTERVAL),
        default=None,
        metavar="SECONDS",
        help="seconds between progress lines within an epoch (default: 1 on a terminal, 30 otherwise; 0: none)",
    )
    add_threads_option(g)
    arrange_help(p, HELP_GROUPS)
    p.set_defaults(run=run)
    track_explicit(p)  # a --recipe fills in only the options not given


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the parsed arguments: the --recipe preset (for ImageNet under appendix-d:
    the papers' ImageNet recipe), overridden by the options given explicitly."""
    from derive.modelargs import collect
    from derive.train.config import IMAGENET, IMAGENET_RECIPE, imagenet_lr
    from derive.train.recipes import RECIPE_FIELDS, recipe_config

    options = dict(
        model=args.model,
        model_args=collect(args.model_arg or ()),
        data_dir=args.data_dir,
        out=args.out,
        dataset=args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_milestones=args.lr_milestones,
        momentum=args.momentum,
        nesterov=args.nesterov,
        weight_decay=args.weight_decay,
        lr_gamma=args.lr_gamma,
        augment=args.augment,
        pad=args.pad,
        pad_fill=args.pad_fill,
        flip=args.flip,
        paper_init=args.paper_init,
        seed=args.seed,
        warmup_steps=args.warmup_steps,
        warmup_factor=args.warmup_factor,
        warmup_until_error=args.warmup_until_error,
        shortcut=args.shortcut,
        conv_init=args.conv_init,
        classifier_init=args.classifier_init,
        augment_per=args.augment_per,
        log_steps=args.log_steps,
        eval_batch_size=args.eval_batch_size,
        device=args.device,
        precision=args.precision,
        memory_format=args.memory_format,
        memory=args.memory,
        compile=args.compile,
        deterministic=args.deterministic,
        resume=args.resume,
        force=args.force,
        download=args.download,
        download_url=args.download_url,
        progress_interval=args.progress_interval,
        checkpoint_every=args.checkpoint_every,
        image_size=args.image_size,
        color_jitter=args.color_jitter,
        lighting=args.lighting,
        workers=args.workers,
        decode=args.decode,
        sync_bn=args.sync_bn,
        dist_timeout=args.dist_timeout,
        lr_schedule=args.lr_schedule,
        cutout=args.cutout,
        auxiliary_weight=args.auxiliary_weight,
        drop_path=args.drop_path,
        grad_clip=args.grad_clip,
    )
    given = explicit(args)
    for name in RECIPE_FIELDS - given:
        options.pop(name, None)  # the recipe's value (or TrainConfig's default) applies
    if args.dataset == IMAGENET and args.recipe == "appendix-d":
        for name, value in IMAGENET_RECIPE.items():
            if name not in given:
                options[name] = value
        if "lr" not in given:  # 0.1 for batch 256, scaled linearly with the global batch
            options["lr"] = imagenet_lr(int(options["batch_size"]))  # type: ignore[call-overload]
    return recipe_config(args.recipe, **options)


def run(args: argparse.Namespace) -> int:
    """Build the config, train, print where the results are; exit 3 if the loss diverged."""
    from derive.train.distributed import RankLost, launch_from_env
    from derive.train.loop import TrainingDiverged, run_training
    from derive.train.progress import Progress

    main_rank = launch_from_env().rank == 0
    progress = Progress(args.progress_interval, enabled=not args.quiet)
    try:
        summary = run_training(build_config(args), progress=progress)
    except (TrainingDiverged, RankLost) as exc:
        if main_rank or isinstance(exc, RankLost):
            print(f"derive: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except UserError as exc:
        if main_rank:  # every rank has the same message (Dist.agreement): rank 0 says it
            raise
        log.debug("rank exits on bad input: %s", exc)
        return UserError.exit_code
    if not main_rank:
        return 0
    final, best = summary["final_test_error_percent"], summary["best_test_error_percent"]
    print(
        f"{args.out}: {summary['epochs_completed']} epochs, test error final {final:.2f} %, "
        f"best {best:.2f} % (epoch {summary['best_epoch']}), {summary['wall_time_seconds']:.0f} s"
    )
    return 0
