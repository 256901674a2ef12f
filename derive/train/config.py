"""The options of a training run. Defaults are the papers' CIFAR recipe (SCIS'23 appendix D, after DenseNet):
SGD with Nesterov momentum 0.9, weight decay 1e-4, batch 64, 300 epochs, lr 0.1 divided by 10 at 50 % and
75 % of the epochs; per-channel mean/std normalization; pad 4 + random 32 x 32 crop + horizontal flip;
He init for convolutions, Xavier for the classifier.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields

from derive import limits
from derive.errors import UserError
from derive.fsutil import check_path
from derive.modelargs import check_model_args
from derive.train.data import DATASETS
from derive.train.options import (
    MEMORY_MODES,
    PAD_FILLS,
    AugmentOptions,
    Every,
    check_evaluation_options,
    cosine_factor,
    parse_every,
)

DEVICES = ("auto", "cpu", "cuda")
IMAGENET = "imagenet"  # an ImageFolder tree (derive.train.imagenet); the CIFARs are in DATASETS
DECODES = ("auto", "workers", "device")
# The papers' ImageNet recipe (SCIS'23 appendix D): 100 epochs, batch 256, lr / 10 after epochs 30,
# 60 and 90; the lr is 0.1 for batch 256, scaled linearly with the global batch (imagenet_lr).
IMAGENET_RECIPE = {"epochs": 100, "batch_size": 256, "lr_milestones": (0.3, 0.6, 0.9)}
IMAGENET_BASE_LR, IMAGENET_BASE_BATCH = 0.1, 256

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


@dataclass
class TrainConfig:
    """Every choice of a run; `summary.json` and the checkpoint record all of them."""

    model: str  # zoo name or path to a .py file defining create_model(num_classes)
    data_dir: str
    out: str
    # keyword arguments for the model's create_model (--model-arg NAME=VALUE; derive.modelargs)
    model_args: dict[str, object] = field(default_factory=dict)
    dataset: str = "cifar10"
    epochs: int = 300
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    lr_milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of `epochs`
    lr_gamma: float = 0.1
    augment: bool = True
    pad: int = 4
    pad_fill: str = "mean"
    flip: bool = True
    paper_init: bool = True
    # DARTS evaluation (SCIS §9.3, `--recipe darts-eval`); derive.train.schedule / regularize
    lr_schedule: str = "step"  # step: lr_milestones and lr_gamma; cosine: to 0 over the epochs
    cutout: int = 0  # side of the square zeroed in every training image (0: off)
    auxiliary_weight: float = 0.0  # loss CE + w·CE(auxiliary head) (0: no auxiliary head)
    drop_path: float = 0.0  # final drop-path probability, rising linearly from 0 (0: off)
    grad_clip: float = 0.0  # max total gradient 2-norm (0: off)
    recipe_name: str = "appendix-d"  # the preset the options started from (derive.train.recipes)
    seed: int = 0
    # warm-up (issue 12; default off as in the papers) and the choices the stability study varies
    warmup_steps: int = 0  # optimizer steps at lr x warmup_factor (at most; see warmup_until_error)
    warmup_factor: float = 0.01  # He et al. 2016, ResNet-110
    warmup_until_error: float | None = None  # %: end the warm-up once the training error is below
    shortcut: str = "model"  # "projection": 1x1 conv + BN instead of each zero-pad shortcut A
    conv_init: str = "paper"  # "torch": PyTorch's default init for convolutions instead of He
    classifier_init: str = "paper"  # "torch": PyTorch's default init for the classifier
    augment_per: str = "image"  # "batch": one crop offset and flip per batch instead of per image
    log_steps: bool = False  # steps.csv: a row per optimizer step
    eval_batch_size: int = 1000
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU
    memory_format: str = "auto"  # auto: channels_last on CUDA
    memory: str = (
        "standard"  # activations in a step: standard, checkpoint, reversible (docs/memory.md)
    )
    compile: bool = False
    deterministic: bool = False
    resume: bool = False
    force: bool = False
    download: bool = False
    download_url: str | None = None
    progress_interval: float | None = None  # seconds; None: 1 on a terminal, 30 otherwise; 0: off
    # checkpoints within an epoch: minutes of wall time ("5"; "0": none) or optimizer steps ("200steps")
    checkpoint_every: str = "5"
    # ImageNet (--dataset imagenet) only: crop side, fb.resnet.torch colour jitter and PCA lighting
    image_size: int = 224
    color_jitter: float = 0.4
    lighting: float = 0.1
    workers: int | None = None  # DataLoader processes per rank; None: from the CPU count
    decode: str = "auto"  # auto = workers: JPEGs decoded on the CPU by the DataLoader workers
    # distributed runs (torchrun): SyncBatchNorm (CUDA only), seconds a collective may wait
    sync_bn: bool = False
    dist_timeout: float = 1800.0

    def __post_init__(self) -> None:
        self.lr_milestones = tuple(float(m) for m in self.lr_milestones)
        self.model_args = dict(self.model_args)
        self.validate()

    def checkpoint_interval(self) -> Every:
        """When to write checkpoints within an epoch (--checkpoint-every); UserError if malformed."""
        return parse_every(str(self.checkpoint_every))

    def validate(self) -> None:
        """Raise UserError for any out-of-range value."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UserError(message)

        need(
            self.dataset in DATASETS or self.dataset == IMAGENET,
            f"--dataset must be one of {', '.join([*DATASETS, IMAGENET])}, got {self.dataset!r}",
        )
        self._validate_dataset_options(need)
        limits.TRAIN_EPOCHS.check(self.epochs, "--epochs")
        limits.TRAIN_BATCH.check(self.batch_size, "--batch-size")
        limits.EVAL_BATCH.check(self.eval_batch_size, "--eval-batch-size")
        limits.PAD.check(self.pad, "--pad")
        limits.SEED.check(self.seed, "--seed")
        if self.progress_interval is not None:
            limits.PROGRESS_INTERVAL.check(self.progress_interval, "--progress-interval")
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
        need(
            self.pad_fill in PAD_FILLS,
            f"--pad-fill must be one of {', '.join(PAD_FILLS)}, got {self.pad_fill!r}",
        )
        need(
            self.device in DEVICES,
            f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}",
        )
        need(self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}")
        need(
            self.memory_format in MEMORY_FORMATS,
            f"--memory-format must be one of {', '.join(MEMORY_FORMATS)}",
        )
        need(
            self.memory in MEMORY_MODES,
            f"--memory must be one of {', '.join(MEMORY_MODES)}, got {self.memory!r}",
        )
        need(
            not (self.resume and self.force), "--resume and --force exclude each other: choose one"
        )
        need(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")
        limits.WARMUP_STEPS.check(self.warmup_steps, "--warmup-steps")
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
        for name, allowed in (
            ("shortcut", SHORTCUTS),
            ("conv_init", INITS),
            ("classifier_init", INITS),
            ("augment_per", AUGMENT_PER),
        ):
            need(
                getattr(self, name) in allowed,
                f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}",
            )
        check_evaluation_options(self)

    @classmethod
    def for_dataset(cls, dataset: str, **options: object) -> TrainConfig:
        """A config whose unspecified recipe options are `dataset`'s defaults: the papers' CIFAR
        recipe (the field defaults) or their ImageNet recipe (IMAGENET_RECIPE, lr from imagenet_lr)."""
        if dataset == IMAGENET:
            for key, value in IMAGENET_RECIPE.items():
                options.setdefault(key, value)
            options.setdefault("lr", imagenet_lr(int(options["batch_size"])))  # type: ignore[call-overload]
        return cls(dataset=dataset, **options)  # type: ignore[arg-type]

    def _validate_dataset_options(self, need: object) -> None:
        """Options that belong to one kind of dataset are refused with the other (never ignored)."""
        assert callable(need)
        imagenet = self.dataset == IMAGENET
        if imagenet:
            need(
                not self.download,
                "--download: ImageNet cannot be downloaded; give --data-dir with train/ and val/",
            )
            need(
                self.pad == 4 and self.pad_fill == "mean" and not self.cutout,
                "--pad, --pad-fill and --cutout apply to CIFAR only (ImageNet crops with RandomResizedCrop)",
            )
        else:
            for name, default in (
                ("image_size", 224),
                ("color_jitter", 0.4),
                ("lighting", 0.1),
                ("decode", "auto"),
                ("workers", None),
            ):
                need(
                    getattr(self, name) == default,
                    f"--{name.replace('_', '-')} applies to --dataset imagenet only",
                )
        limits.IMAGE_SIZE.check(self.image_size, "--image-size")
        limits.COLOR_JITTER.check(self.color_jitter, "--color-jitter")
        limits.LIGHTING.check(self.lighting, "--lighting")
        if self.workers is not None:
            limits.WORKERS.check(self.workers, "--workers")
        need(
            self.decode in DECODES,
            f"--decode must be one of {', '.join(DECODES)}, got {self.decode!r}",
        )
        limits.DIST_TIMEOUT.check(self.dist_timeout, "--dist-timeout")

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


def imagenet_lr(batch_size: int) -> float:
    """The papers' ImageNet lr, 0.1 for batch 256, scaled linearly with the global batch (Goyal et al.)."""
    return IMAGENET_BASE_LR * batch_size / IMAGENET_BASE_BATCH


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
