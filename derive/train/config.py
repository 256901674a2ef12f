"""The options of a training run. Defaults are the papers' CIFAR recipe (SCIS'23 appendix D, after DenseNet):
SGD with Nesterov momentum 0.9, weight decay 1e-4, batch 64, 300 epochs, lr 0.1 divided by 10 at 50 % and
75 % of the epochs; per-channel mean/std normalization; pad 4 + random 32 x 32 crop + horizontal flip;
He init for convolutions, Xavier for the classifier.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields

from derive import limits
from derive.errors import UserError, need
from derive.fsutil import check_path
from derive.modelargs import MEMORY_MODES, check_model_args, collect
from derive.optionspec import check_option, default_of, option
from derive.train.data import DATASETS
from derive.train.options import (
    ERROR_WINDOW,
    MAX_AUXILIARY_WEIGHT,
    MAX_CUTOUT,
    PAD_FILLS,
    SCHEDULES,
    AugmentOptions,
    Every,
    cosine_factor,
    parse_error_percent,
    parse_every,
    parse_lr_fractions,
    parse_model_arg_text,
    parse_warmup_factor,
)
from derive.train.recipes import RECIPES

DEVICES = ("auto", "cpu", "cuda")
IMAGENET = "imagenet"  # an ImageFolder tree (derive.train.imagenet); the CIFARs are in DATASETS
DECODES = ("auto", "workers", "device")
# The papers' ImageNet recipe (SCIS'23 appendix D): 100 epochs, batch 256, lr / 10 after epochs 30,
# 60 and 90; the lr is 0.1 for batch 256, scaled linearly with the global batch (imagenet_lr).
IMAGENET_RECIPE = {"epochs": 100, "batch_size": 256, "lr_milestones": (0.3, 0.6, 0.9)}
IMAGENET_BASE_LR, IMAGENET_BASE_BATCH = 0.1, 256
IMAGENET_ONLY = ("image_size", "color_jitter", "lighting", "decode", "workers")
"""Options refused with a CIFAR dataset unless at their defaults."""

PRECISIONS = ("auto", "fp32", "bf16")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")

# Options that only say where and how fast to compute, or where files are: a resumed run may change them.
RUNTIME_FIELDS = frozenset(
    {
        "data_dir",
        "out",
        "device",
        "precision",
        "memory_format",
        "memory",
        "compile",
        "deterministic",
        "eval_batch_size",
        "resume",
        "force",
        "download",
        "download_url",
        "progress_interval",
        "checkpoint_every",
        "log_steps",
        "workers",
        "decode",
        "sync_bn",
        "dist_timeout",
    }
)
SHORTCUTS = ("model", "projection")
INITS = ("paper", "torch")
AUGMENT_PER = ("image", "batch")


RECIPE_NAMES = tuple(RECIPES)

NONNEG = {"kind": float, "what": "a number >= 0"}
"""A float option refused below 0 on the command line (TrainConfig.validate has the finer checks)."""


@dataclass
class TrainConfig:
    """Every choice of a run; `summary.json` and the checkpoint record all of them.

    Each field that is a `derive train` option declares it here (derive.optionspec): the parser is
    built from these declarations, in the help groups of derive.cli.train.HELP_GROUPS.
    """

    model: str = option(
        positional=True,
        metavar="MODEL",
        help="zoo model name or path to a .py file defining create_model(num_classes)",
    )
    data_dir: str = option(
        required=True,
        metavar="DIR",
        help="folder holding the official CIFAR python layout, or ImageNet's train/ and val/",
    )
    out: str = option(required=True, metavar="RUN_DIR", help="run directory (created if missing)")
    # keyword arguments for the model's create_model (derive.modelargs)
    model_args: dict[str, object] = option(
        factory=dict,
        flag="--model-arg",
        repeat=True,
        parse=parse_model_arg_text,
        collect=collect,
        metavar="NAME=VALUE",
        help="keyword argument for MODEL's create_model, repeatable: a bool (true/false), int, "
        "float or string, checked against its signature; NAME.KEY=VALUE sets one entry of a "
        "mapping argument (e.g. --model-arg depth=110 --model-arg coefficients.beta2=-1 for "
        "generated/heavyball_conv.py; its docstring lists the papers' networks). A zoo name takes "
        "none (num_classes comes from --dataset). Recorded in summary.json; --resume checks it",
    )
    dataset: str = option(
        "cifar10",
        choices=(*DATASETS, IMAGENET),
        help="which dataset: a CIFAR in the official python layout, or an ImageNet folder tree",
    )
    epochs: int = option(
        300,
        kind=int,
        what="a positive integer",
        limit=limits.TRAIN_EPOCHS,
        metavar="N",
        help="training epochs (default: 300; ImageNet: 100)",
    )
    batch_size: int = option(
        64,
        kind=int,
        what="a positive integer",
        limit=limits.TRAIN_BATCH,
        metavar="B",
        help="global training batch size, split evenly over the torchrun processes, which must divide it; memory is checked before the run (default: 64; ImageNet: 256)",
    )
    lr: float = option(
        0.1, **NONNEG, help="initial learning rate (default: 0.1; ImageNet: 0.1 x batch/256)"
    )
    momentum: float = option(0.9, **NONNEG, help="SGD momentum")
    nesterov: bool = option(True, switch="either", help="Nesterov momentum")
    weight_decay: float = option(1e-4, **NONNEG, help="L2 weight decay (on every parameter)")
    # fractions of `epochs`
    lr_milestones: tuple[float, ...] = option(
        (0.5, 0.75),
        parse=parse_lr_fractions,
        metavar="F,F",
        help="fractions of the epochs after which the lr is multiplied by --lr-gamma (epoch floor(F*N)+1 is the first at the lower lr; never epoch 1) (default: 0.5,0.75; ImageNet: 0.3,0.6,0.9)",
    )
    lr_gamma: float = option(0.1, **NONNEG, help="lr factor at each milestone")
    augment: bool = option(
        True,
        switch="either",
        help="pad + random crop + flip; --no-augment gives the papers' columns without '+'",
    )
    pad: int = option(
        4,
        kind=int,
        what="an integer >= 0",
        limit=limits.PAD,
        help="padding on each side before the random 32x32 crop",
    )
    pad_fill: str = option(
        "mean",
        choices=PAD_FILLS,
        help="padding value: 'mean' = zero after normalization, as the DenseNet/fb.resnet.torch code the papers follow; 'black' = zero pixels, as torchvision's RandomCrop(32, padding=4)",
    )
    flip: bool = option(True, switch="either", help="random horizontal flip (with --augment)")
    paper_init: bool = option(
        True,
        switch="either",
        help="He-normal convolutions, Xavier classifier; --no-paper-init keeps the model's own init",
    )
    # DARTS evaluation (SCIS §9.3, `--recipe darts-eval`); derive.train.schedule / regularize
    lr_schedule: str = option(
        "step",
        choices=SCHEDULES,
        help="step: x --lr-gamma at --lr-milestones; cosine: lr (1 + cos(pi e/N))/2 after e of N "
        "epochs, to 0 (darts-eval: cosine)",
    )
    cutout: int = option(
        0,
        kind=int,
        what="an integer >= 0",
        limit=limits.CUTOUT,
        metavar="L",
        help="zero an LxL square of each training image after normalization, centred uniformly, "
        "clipped at the border; 0 off (darts-eval: 16)",
    )
    auxiliary_weight: float = option(
        0.0,
        **NONNEG,
        metavar="W",
        help="loss CE + W CE(auxiliary head), the model built with create_model(..., "
        "auxiliary=True); 0 off, at most 1 so the main loss dominates (darts-eval: 0.4)",
    )
    drop_path: float = option(
        0.0,
        **NONNEG,
        metavar="P",
        help="drop-path probability rising linearly, P (e-1)/N in epoch e of N, set as the model's "
        "drop_path_prob; 0 off, below 1 as kept paths are scaled by 1/(1-P) (darts-eval: 0.2)",
    )
    grad_clip: float = option(
        0.0,
        **NONNEG,
        metavar="C",
        help="clip the gradients' total 2-norm to C before each step; 0 off (darts-eval: 5)",
    )
    # the preset the options started from (derive.train.recipes)
    recipe_name: str = option(
        "appendix-d",
        flag="--recipe",
        choices=RECIPE_NAMES,
        help="appendix-d: the manual designs' recipe above; darts-eval: the searched cells' "
        "evaluation (values in the description)",
    )
    seed: int = option(
        0,
        kind=int,
        what="an integer >= 0",
        limit=limits.SEED,
        metavar="S",
        help="seed of the init, and with the epoch number, of each epoch's order, crops and flips",
    )
    # warm-up (default off as in the papers) and the choices the stability study varies
    warmup_steps: int = option(
        0,
        kind=int,
        what="an integer >= 0",
        limit=limits.WARMUP_STEPS,
        metavar="N",
        help="train the first N optimizer steps at lr x --warmup-factor, then follow the schedule "
        "(0: no warm-up, the papers' recipe). He et al. 2016 for ResNet-110 (lr 0.01 until the training "
        "error is below 80 %%, about 400 iterations at batch 128): --warmup-factor 0.1 "
        "--warmup-until-error 80 --warmup-steps 400",
    )
    warmup_factor: float = option(
        0.01,  # He et al. 2016, ResNet-110
        parse=parse_warmup_factor,
        metavar="F",
        help="lr factor during the warm-up, in (0, 1] (a warm-up scales the lr down); "
        "He et al.'s lr 0.01 is the factor 0.1 of the papers' lr 0.1",
    )
    # %: end the warm-up once the training error is below
    warmup_until_error: float | None = option(
        None,
        parse=parse_error_percent,
        metavar="PERCENT",
        help="end the warm-up early, after the first step at which the training error over the last "
        f"{ERROR_WINDOW} steps' batches is below PERCENT (strictly between 0 and 100); He et al.'s "
        "rule is 80, with --warmup-steps as the longest the warm-up may last",
    )
    shortcut: str = option(
        "model",
        choices=SHORTCUTS,
        help="'model': the model's own shortcuts (zero-pad shortcut A in the CIFAR ResNets/HBNets, "
        "as the papers); 'projection': 1x1 conv + BN (shortcut B) in place of each zero-pad one",
    )
    conv_init: str = option(
        "paper",
        choices=INITS,
        help="'paper': He-normal (fan-out) convolutions; 'torch': PyTorch's default "
        "(reset_parameters) for every convolution",
    )
    classifier_init: str = option(
        "paper",
        choices=INITS,
        help="'paper': Xavier-uniform classifier; 'torch': PyTorch's default for linear layers",
    )
    augment_per: str = option(
        "image",
        choices=AUGMENT_PER,
        help="'image': each image its own random crop and flip (the papers); 'batch': one crop "
        "offset and one flip for a whole batch",
    )
    log_steps: bool = option(
        False,
        switch="on",
        help="also write RUN_DIR/steps.csv, a row per optimizer step: step,epoch,loss,acc,lr,grad_norm "
        "(plot it with derive plot --steps)",
    )
    eval_batch_size: int = option(
        1000,
        kind=int,
        what="a positive integer",
        limit=limits.EVAL_BATCH,
        metavar="B",
        help="batch size for evaluating the test set",
    )
    device: str = option("auto", choices=DEVICES, help="auto: CUDA if available")
    precision: str = option(
        "auto", choices=PRECISIONS, help="auto: bf16 autocast on CUDA, fp32 on the CPU"
    )
    memory_format: str = option("auto", choices=MEMORY_FORMATS, help="auto: channels_last on CUDA")
    memory: str = option(
        "standard",
        choices=MEMORY_MODES,
        help="activations kept for backward: standard (all); checkpoint (block inputs, each block "
        "recomputed once in backward; any generated model); reversible (the newest two states and "
        "each stage's input, inputs recomputed by the inverse step; invertible models only: "
        "prehbnet*); docs/memory.md",
    )
    compile: bool = option(
        False, switch="on", help="torch.compile the model (slow first epoch, faster after)"
    )
    deterministic: bool = option(
        False, switch="on", help="deterministic kernels, no cudnn.benchmark (slower on CUDA)"
    )
    resume: bool = option(
        False,
        switch="on",
        help="continue the run in RUN_DIR after its last completed epoch (a larger --epochs "
        "extends it; the epochs left follow the schedule for the new total)",
    )
    force: bool = option(
        False, switch="on", help="start over, deleting RUN_DIR's previous run files"
    )
    download: bool = option(
        False,
        switch="on",
        help="fetch the official tarball into DIR if the data is missing (md5 checked)",
    )
    download_url: str | None = option(
        None,
        metavar="BASE",
        help="base URL to download from (default: $DERIVE_CIFAR_URL or https://www.cs.toronto.edu/~kriz)",
    )
    # seconds; None: 1 on a terminal, 30 otherwise; 0: off
    progress_interval: float | None = option(
        None,
        kind=float,
        what="a number >= 0",
        limit=limits.PROGRESS_INTERVAL,
        metavar="SECONDS",
        help="seconds between progress lines within an epoch (default: 1 on a terminal, 30 otherwise; 0: none)",
    )
    # checkpoints within an epoch: minutes of wall time ("5"; "0": none) or optimizer steps ("200steps")
    checkpoint_every: str = option(
        "5",
        metavar="MINUTES|Nsteps",
        help="also write checkpoint.pt within an epoch, after this many minutes of wall time "
        "(default: 5; 0: only after each epoch) or every N optimizer steps (e.g. 200steps); "
        "Ctrl-C or SIGTERM writes one too, so --resume continues from the exact step",
    )
    # ImageNet (--dataset imagenet) only: crop side, fb.resnet.torch colour jitter and PCA lighting
    image_size: int = option(
        224,
        kind=int,
        what="an integer >= 32",
        limit=limits.IMAGE_SIZE,
        metavar="S",
        help="side of the training crop; validation resizes to S/0.875 and centre-crops S (sizes below 224 are for tests)",
    )
    color_jitter: float = option(
        0.4,
        kind=float,
        what="a number >= 0",
        limit=limits.COLOR_JITTER,
        metavar="F",
        help="fb.resnet.torch colour jitter: brightness, contrast and saturation each scaled by 1+U(-F,F), in random order; 0: off",
    )
    lighting: float = option(
        0.1,
        kind=float,
        what="a number >= 0",
        limit=limits.LIGHTING,
        metavar="F",
        help="AlexNet/fb.resnet.torch PCA lighting noise with standard deviation F; 0: off",
    )
    # DataLoader processes per rank; None: from the CPU count
    workers: int | None = option(
        None,
        kind=int,
        what="an integer >= 0",
        limit=limits.WORKERS,
        metavar="N",
        help="ImageNet: JPEG-decoding DataLoader processes per rank (default: the CPUs / processes on this node, at most 8; 0: decode in the training process)",
    )
    decode: str = option(
        "auto",
        choices=DECODES,
        help="ImageNet: where JPEGs are decoded: 'workers' (CPU, torchvision.io.decode_jpeg in the DataLoader processes) or 'device' (torchvision.io.decode_jpeg on the training device, nvJPEG on CUDA; the workers only read files); auto: workers",
    )
    # distributed runs (torchrun): SyncBatchNorm (CUDA only), seconds a collective may wait
    sync_bn: bool = option(
        False,
        switch="on",
        help="torchrun on CUDA: SyncBatchNorm, BatchNorm statistics over the global batch (default: per process, as the papers' 4-GPU runs)",
    )
    dist_timeout: float = option(
        1800.0,
        kind=float,
        what="seconds >= 10",
        limit=limits.DIST_TIMEOUT,
        metavar="SECONDS",
        help="torchrun: how long a rank waits for the others at a collective before the job fails",
    )

    def __post_init__(self) -> None:
        self.lr_milestones = tuple(float(m) for m in self.lr_milestones)
        self.model_args = dict(self.model_args)
        self.validate()

    def checkpoint_interval(self) -> Every:
        """When to write checkpoints within an epoch (--checkpoint-every); UserError if malformed."""
        return parse_every(str(self.checkpoint_every))

    def validate(self) -> None:
        """Raise UserError for any out-of-range value (bounds and choices as declared above)."""
        check_option(self, "dataset")
        self._validate_dataset_options()
        for name in ("epochs", "batch_size", "eval_batch_size", "pad", "seed", "progress_interval"):
            check_option(self, name)
        self.checkpoint_interval()
        check_path(self.data_dir, "--data-dir")
        check_path(self.out, "--out")
        if self.model.endswith(".py"):
            check_path(self.model, "MODEL")
        check_model_args(self.model_args)
        for name in ("lr", "momentum", "weight_decay", "lr_gamma"):
            value = getattr(self, name)
            need(
                math.isfinite(value) and value >= 0,
                f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}",
            )
        need(self.lr > 0, f"--lr must be positive, got {self.lr}")
        need(
            not self.nesterov or self.momentum > 0,
            "Nesterov momentum needs --momentum > 0 (or --no-nesterov)",
        )
        need(
            all(0 < m < 1 for m in self.lr_milestones)
            and list(self.lr_milestones) == sorted(self.lr_milestones),
            f"--lr-milestones must be increasing fractions strictly between 0 and 1, got {list(self.lr_milestones)}",
        )
        for name in ("pad_fill", "device", "precision", "memory_format", "memory"):
            check_option(self, name)
        need(
            not (self.resume and self.force), "--resume and --force exclude each other: choose one"
        )
        check_option(self, "warmup_steps")
        need(
            math.isfinite(self.warmup_factor) and 0 < self.warmup_factor <= 1,
            f"--warmup-factor must be in (0, 1] (it scales the lr down), got {self.warmup_factor}",
        )
        need(
            self.warmup_until_error is None or 0 < self.warmup_until_error < 100,
            f"--warmup-until-error must be a percentage strictly between 0 and 100, got {self.warmup_until_error}",
        )
        need(
            self.warmup_until_error is None or self.warmup_steps > 0,
            "--warmup-until-error needs --warmup-steps N > 0 (the longest the warm-up may last)",
        )
        for name in ("shortcut", "conv_init", "classifier_init", "augment_per"):
            check_option(self, name)
        check_evaluation_options(self)

    @classmethod
    def for_dataset(cls, dataset: str, **options: object) -> TrainConfig:
        """A config whose unspecified recipe options are `dataset`'s defaults: the papers' CIFAR
        recipe (the field defaults) or their ImageNet recipe (with_dataset_recipe)."""
        return cls(dataset=dataset, **with_dataset_recipe(dataset, options))  # type: ignore[arg-type]

    def _validate_dataset_options(self) -> None:
        """Options that belong to one kind of dataset are refused with the other (never ignored)."""
        if self.dataset == IMAGENET:
            need(
                not self.download,
                "--download: ImageNet cannot be downloaded; give --data-dir with train/ and val/",
            )
            need(
                self.pad == 4 and self.pad_fill == "mean" and not self.cutout,
                "--pad, --pad-fill and --cutout apply to CIFAR only (ImageNet crops with RandomResizedCrop)",
            )
        else:
            for name in IMAGENET_ONLY:
                need(
                    getattr(self, name) == default_of(TRAIN_FIELDS[name]),
                    f"--{name.replace('_', '-')} applies to --dataset imagenet only",
                )
        for name in ("image_size", "color_jitter", "lighting", "workers", "decode", "dist_timeout"):
            check_option(self, name)

    @property
    def num_classes(self) -> int:
        """CIFAR's number of classes (ImageNet's comes from its class folders: sources.dataset_shape)."""
        if self.dataset == IMAGENET:
            raise ValueError(
                "the number of ImageNet classes comes from the folders (dataset_shape)"
            )
        return DATASETS[self.dataset].num_classes

    def milestone_epochs(self) -> list[int]:
        """Completed-epoch counts after which the lr is multiplied by lr_gamma: max(1, floor(fraction * epochs)).

        For 300 epochs: [150, 225], i.e. epochs 1-150 at 0.1, 151-225 at 0.01, 226-300 at 0.001.
        The first epoch always runs at the initial lr (a 1-epoch smoke run trains at 0.1).
        """
        return [max(1, int(m * self.epochs)) for m in self.lr_milestones]

    def lr_at(self, epoch: int) -> float:
        """The learning rate of 1-based `epoch` (an independent statement of the schedule)."""
        if self.lr_schedule == "cosine":
            return self.lr * cosine_factor(epoch - 1, self.epochs)
        drops = sum(1 for m in self.milestone_epochs() if epoch - 1 >= m)
        return self.lr * self.lr_gamma**drops

    def augment_options(self) -> AugmentOptions:
        return AugmentOptions(
            enabled=self.augment,
            pad=self.pad,
            flip=self.flip,
            pad_fill=self.pad_fill,
            per=self.augment_per,
            cutout=self.cutout,
        )

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d

    def recipe(self) -> dict[str, object]:
        """The options that shape the result (all but RUNTIME_FIELDS and `model`): a resume must match them.

        The model is compared by identity instead (zoo name, or the content hash of a .py file), so a
        run can be resumed from another working directory.
        """
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS and k != "model"}


TRAIN_FIELDS = {item.name: item for item in fields(TrainConfig)}


def imagenet_lr(batch_size: int) -> float:
    """The papers' ImageNet lr, 0.1 for batch 256, scaled linearly with the global batch (Goyal et al.)."""
    return IMAGENET_BASE_LR * batch_size / IMAGENET_BASE_BATCH


def with_dataset_recipe(dataset: str, options: dict[str, object]) -> dict[str, object]:
    """`options`, and for ImageNet the papers' ImageNet recipe for each recipe option not in them
    (IMAGENET_RECIPE; the lr from imagenet_lr of the batch size)."""
    if dataset != IMAGENET:
        return dict(options)
    filled = {**IMAGENET_RECIPE, **options}
    filled.setdefault("lr", imagenet_lr(int(filled["batch_size"])))  # type: ignore[call-overload]
    return filled


def recipe_defaults() -> dict[str, object]:
    """The default of every scalar recipe option (and model_args, {}): what a checkpoint older than
    the option did."""
    defaults = {
        f.name: f.default if f.default_factory is MISSING else f.default_factory()
        for f in fields(TrainConfig)
        if f.name not in RUNTIME_FIELDS
    }
    return {k: v for k, v in defaults.items() if isinstance(v, (bool, int, float, str, dict))}


def config_fields() -> list[str]:
    """Names of every TrainConfig field, in declaration order."""
    return [f.name for f in fields(TrainConfig)]


def check_evaluation_options(config: TrainConfig) -> None:
    """UserError for an out-of-range evaluation option (called by TrainConfig.validate)."""
    if config.recipe_name not in RECIPES:
        raise UserError(f"--recipe must be one of {', '.join(RECIPES)}, got {config.recipe_name!r}")
    if config.lr_schedule not in SCHEDULES:
        raise UserError(
            f"--lr-schedule must be one of {', '.join(SCHEDULES)}, got {config.lr_schedule!r}"
        )
    if isinstance(config.cutout, bool) or not isinstance(config.cutout, int):
        raise UserError(f"--cutout must be an integer, got {config.cutout!r}")
    if not 0 <= config.cutout <= MAX_CUTOUT:
        raise UserError(
            f"--cutout must be between 0 (off) and {MAX_CUTOUT} (the image side), got {config.cutout}"
        )
    w = config.auxiliary_weight
    if not (math.isfinite(w) and 0 <= w <= MAX_AUXILIARY_WEIGHT):
        raise UserError(
            f"--auxiliary-weight must be between 0 (off) and {MAX_AUXILIARY_WEIGHT:g}, got {w}"
        )
    if not (math.isfinite(config.drop_path) and 0 <= config.drop_path < 1):
        raise UserError(
            f"--drop-path must be >= 0 and < 1 (kept paths are scaled by 1/(1 - P)), got {config.drop_path}"
        )
    if not (math.isfinite(config.grad_clip) and config.grad_clip >= 0):
        raise UserError(
            f"--grad-clip must be a finite number >= 0 (0: off), got {config.grad_clip}"
        )


def recipe_config(name: str, **options: object) -> TrainConfig:
    """TrainConfig of recipe `name` (derive.train.recipes), with `options` (model, data_dir, out, …)
    overriding its preset."""
    if name not in RECIPES:
        raise UserError(f"--recipe must be one of {', '.join(RECIPES)}, got {name!r}")
    return TrainConfig(**{**RECIPES[name], **options, "recipe_name": name})  # type: ignore[arg-type]
