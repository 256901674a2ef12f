"""The options of an architecture search. Defaults: SCIS §9.3 (after DARTS, Liu et al. 2019).

Weights: SGD lr 0.025, cosine to `lr_min` (SCIS: "annealed down to zero"; DARTS used 0.001),
momentum 0.9, weight decay 3e-4, gradient norm clipped at 5. Architecture (α, β): Adam lr 3e-4,
betas (0.5, 0.999), weight decay 1e-3, zero init. 8 cells, 16 channels, batch 64 (both halves),
50 epochs, first order; the training set split in halves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from derive.errors import need
from derive.limits import check_nas_sizes
from derive.nas.archinit import ALPHA_INITS, start_name
from derive.nas.searchdata import IMAGE_SIZES
from derive.train.config import DEVICES

MAX_EPOCHS = 10_000
MAX_BATCH = 4096
ARCH_BETAS = (0.5, 0.999)

# Where and how fast to compute, or where files are: a resumed run may change these.
RUNTIME_FIELDS = frozenset(
    {"data_dir", "out", "device", "resume", "force", "progress_interval", "plot", "eval_batch_size"}
)


@dataclass
class SearchConfig:
    """Every choice of a search; summary.json and the checkpoint record all of them."""

    space: str
    data_dir: str
    out: str
    dataset: str = "cifar10"
    hb_init: bool = False
    algo_init: bool = False
    order: int = 1
    epochs: int = 50
    cells: int = 8
    channels: int = 16
    batch_size: int = 64
    seed: int = 0
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_weight_decay: float = 1e-3
    alpha_init: str = "zero"
    init_weight: float = 0.99
    train_portion: float = 0.5
    image_size: int = 32
    limit_images: int | None = None
    augment: bool = True
    ops: tuple[str, ...] | None = None
    coefficients: dict[str, float] = field(default_factory=dict)
    eval_batch_size: int = 500
    device: str = "auto"
    resume: bool = False
    force: bool = False
    plot: bool = True
    progress_interval: float | None = None

    def __post_init__(self) -> None:
        if self.ops is not None:
            self.ops = tuple(self.ops)
        self.validate()

    def validate(self) -> None:
        """UserError naming the first out-of-range option."""

        need(
            self.dataset == "cifar10",
            f"--dataset must be cifar10 for the search, got {self.dataset!r}",
        )
        need(self.order in (1, 2), f"--order must be 1 or 2, got {self.order}")
        need(
            1 <= self.epochs <= MAX_EPOCHS,
            f"--epochs must be from 1 to {MAX_EPOCHS}, got {self.epochs}",
        )
        check_nas_sizes(self.channels, self.cells)
        need(
            2 <= self.batch_size <= MAX_BATCH,
            f"--batch-size must be from 2 to {MAX_BATCH} (BatchNorm needs 2 images), got {self.batch_size}",
        )
        need(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")
        for name in (
            "lr",
            "lr_min",
            "momentum",
            "weight_decay",
            "grad_clip",
            "arch_lr",
            "arch_weight_decay",
        ):
            value = getattr(self, name)
            need(
                math.isfinite(value) and value >= 0,
                f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}",
            )
        need(self.lr > 0, f"--lr must be positive, got {self.lr}")
        need(self.lr_min <= self.lr, f"--lr-min {self.lr_min} exceeds --lr {self.lr}")
        need(self.momentum < 1, f"--momentum must be below 1, got {self.momentum}")
        need(
            self.alpha_init in ALPHA_INITS, f"--alpha-init must be one of {', '.join(ALPHA_INITS)}"
        )
        need(
            0.5 <= self.init_weight < 1,
            f"--init-weight must be in [0.5, 1), got {self.init_weight}",
        )
        start_name(self.hb_init, self.algo_init)
        need(
            0 < self.train_portion < 1,
            f"--train-portion must be strictly between 0 and 1, got {self.train_portion}",
        )
        need(
            self.image_size in IMAGE_SIZES,
            f"--image-size must be one of {', '.join(map(str, IMAGE_SIZES))}, got {self.image_size}",
        )
        need(
            self.limit_images is None or self.limit_images >= 4,
            f"--limit-images must be at least 4 (two images per half), got {self.limit_images}",
        )
        need(
            self.eval_batch_size >= 1, f"--eval-batch-size must be >= 1, got {self.eval_batch_size}"
        )
        need(
            self.device in DEVICES,
            f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}",
        )
        need(
            not (self.resume and self.force), "--resume and --force exclude each other: choose one"
        )
        need(
            self.progress_interval is None or self.progress_interval >= 0,
            f"--progress-interval must be >= 0, got {self.progress_interval}",
        )

    @property
    def start(self) -> str | None:
        """The initialisation of the architecture: "hb", "algo" or None (alpha_init)."""
        return start_name(self.hb_init, self.algo_init)

    def lr_at(self, epoch: int) -> float:
        """Cosine annealing without restart: lr_min + (lr − lr_min)(1 + cos(π(e − 1)/E))/2, 1-based e.

        Epoch 1 runs at lr, as DARTS's schedule did on PyTorch 0.3 (research notes §1.5)."""
        phase = math.pi * (epoch - 1) / self.epochs
        return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(phase)) / 2

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["ops"] = list(self.ops) if self.ops is not None else None
        d["arch_betas"] = list(ARCH_BETAS)
        return d

    def recipe(self) -> dict[str, object]:
        """The options that shape the result: a resumed run must match them all."""
        return {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}


__all__ = ["ARCH_BETAS", "RUNTIME_FIELDS", "SearchConfig"]
