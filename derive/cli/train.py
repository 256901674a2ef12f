"""`derive train MODEL --dataset cifar10|cifar100|imagenet --data-dir DIR --out RUN_DIR`: the papers' recipes,
on one process or, under torchrun, on many (DistributedDataParallel)."""

from __future__ import annotations

import argparse
import logging
import sys

from derive.cli.argtypes import add_threads_option
from derive.cli.options_parser import HelpLayout, add_declared, given_values
from derive.errors import UserError
from derive.train.config import TrainConfig, recipe_config, with_dataset_recipe
from derive.train.progress import Progress
from derive.train.recipes import DEFAULT_RECIPE

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


HELP_GROUPS: HelpLayout = (
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
"""`derive train --help`'s groups, in order, each with its options in order (common ones first).
Each option itself is declared on its TrainConfig field (derive.train.config)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive train`, its options built from TrainConfig's declarations."""

    p = subparsers.add_parser(
        "train",
        help="train a model on CIFAR-10/100 or ImageNet with the papers' recipe (torchrun: many GPUs)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    add_declared(p, TrainConfig, HELP_GROUPS, extras={"--threads": add_threads_option})
    p.set_defaults(run=run)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the parsed arguments: the --recipe preset (for ImageNet under appendix-d:
    the papers' ImageNet recipe), overridden by the options typed, even where a typed value
    equals the default."""

    options = given_values(args, TrainConfig)
    options.pop("recipe_name", None)  # recipe_config records args.recipe
    if args.recipe == DEFAULT_RECIPE:
        options = with_dataset_recipe(args.dataset, options)
    return recipe_config(args.recipe, **options)


def run(args: argparse.Namespace) -> int:
    """Build the config, train, print where the results are; exit 3 if the loss diverged."""
    from derive.train.distributed import RankLost, launch_from_env  # deferred: imports torch
    from derive.train.loop import TrainingDiverged, run_training  # deferred: imports torch

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
