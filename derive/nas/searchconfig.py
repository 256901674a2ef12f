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
from derive.optionspec import check_option, option
from derive.train.config import DEVICES

MAX_EPOCHS = 10_000
MAX_BATCH = 4096
ARCH_BETAS = (0.5, 0.999)

# derive.nas.searchdata's image sizes and derive.nas.archinit's α inits, restated so that
# `derive --help` need not import torch (tests/test_nas_search_cli.py checks the sizes agree).
IMAGE_SIZES = (8, 12, 16, 20, 24, 28, 32)
ALPHA_INIT_CHOICES = ("zero", "randn")

POSITIVE = {"kind": int, "what": "a positive integer", "low": 1}
NONNEG = {"kind": float, "what": "a number >= 0"}


def parse_order(text: str) -> int:
    """--order {1,2}: first order or unrolled."""
    if text not in ("1", "2"):
        raise ValueError(f"expected 1 or 2, got {text!r}")
    return int(text)


def parse_ops(text: str) -> tuple[str, ...]:
    """--ops OP,OP: comma-separated operation names (checked against the space by the search)."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ValueError(f"expected comma-separated operation names, got {text!r}")
    return names


# Where and how fast to compute, or where files are: a resumed run may change these.
RUNTIME_FIELDS = frozenset(
    {"data_dir", "out", "device", "resume", "force", "progress_interval", "plot", "eval_batch_size"}
)


@dataclass
class SearchConfig:
    """Every choice of a search; summary.json and the checkpoint record all of them.

    Each field that is a `derive nas search` option declares it here (derive.optionspec); the
    parser is built from these declarations in the help groups of derive.cli.nas_search.
    """

    space: str = option(
        required=True,
        metavar="SPACE",
        help="darts, heavyball (hb), agd (the paper's AGD space, from nesterov2), or any "
        "`derive network --algo` value incl. a .toml spec",
    )
    data_dir: str = option(metavar="DIR", help="folder holding the official python layout")
    out: str = option(metavar="RUN_DIR", help="run directory (created if missing)")
    dataset: str = option("cifar10", choices=("cifar10",), help="the dataset")
    hb_init: bool = option(
        False,
        switch="on",
        help="SCIS §9.1 on the heavy-ball space: ō₂ on identity, the x_{t−2} edge on negative "
        "identity, ō₁ random, so the initial cell is x_t = F(x_{t−1}) + x_{t−1} − x_{t−2} (18)",
    )
    algo_init: bool = option(
        False,
        switch="on",
        help="start every state edge at the algorithm's own fixed coefficient c (|c| <= 1, as "
        "w_skip − w_neg = c); refused where no fixed coefficient exists",
    )
    order: int = option(
        1, parse=parse_order, metavar="{1,2}", help="1: first order (SCIS); 2: unrolled"
    )
    epochs: int = option(50, **POSITIVE, metavar="N", help="search epochs")
    cells: int = 8  # --cells and --channels: derive.cli.nas_sizes, shared with `derive nas network`
    channels: int = 16
    batch_size: int = option(
        64, **POSITIVE, metavar="B", help="batch of each half, >= 2 (BatchNorm)"
    )
    seed: int = option(
        0, kind=int, what="an integer >= 0", metavar="S", help="init and batch-order seed"
    )
    lr: float = option(0.025, **NONNEG, help="initial weight learning rate")
    lr_min: float = option(0.0, **NONNEG, help="cosine floor (SCIS: 0; DARTS: 0.001)")
    momentum: float = option(0.9, **NONNEG, help="weight SGD momentum, < 1")
    weight_decay: float = option(3e-4, **NONNEG, help="weight L2 decay")
    grad_clip: float = option(5.0, **NONNEG, help="weight gradient norm clip")
    arch_lr: float = option(3e-4, **NONNEG, help="Adam lr of α and β")
    arch_weight_decay: float = option(1e-3, **NONNEG, help="Adam L2 decay of α and β")
    alpha_init: str = option(
        "zero",
        choices=ALPHA_INIT_CHOICES,
        help="α and β otherwise: zero (SCIS) or 1e-3·randn (DARTS)",
    )
    init_weight: float = option(
        0.99,
        **NONNEG,
        metavar="W",
        help="softmax weight of the chosen ops under --hb-init/--algo-init, in [0.5, 1): a softmax of "
        "finite logits is never one-hot; 0.99 is a margin of ~6.7 logits, which a full 50-epoch search "
        "can undo",
    )
    train_portion: float = option(
        0.5,
        **NONNEG,
        metavar="F",
        help="fraction of the training images that train the weights; the rest train α/β",
    )
    image_size: int = option(
        32,
        **POSITIVE,
        metavar="S",
        help=f"resample the images to SxS, S in {{{','.join(map(str, IMAGE_SIZES))}}} (multiples of 4: "
        "both reductions halve it; CPU budgets)",
    )
    limit_images: int | None = option(
        None,
        **POSITIVE,
        metavar="N",
        help="use only the first N training images (>= 4) before the split (small budgets)",
    )
    augment: bool = option(
        True, switch="either", help="pad + random crop + flip on both halves (DARTS)"
    )
    ops: tuple[str, ...] | None = option(
        None,
        parse=parse_ops,
        metavar="OP,OP",
        help="the candidate operations (a subset of SCIS Table 3; default: the space's own, DARTS's 8 "
        "for darts and all 9 otherwise)",
    )
    coefficients: dict[str, float] = field(default_factory=dict)  # --coef NAME=VALUE
    eval_batch_size: int = option(
        500,
        **POSITIVE,
        metavar="B",
        help="batch size of the per-epoch evaluation on the architecture half",
    )
    device: str = option("auto", choices=DEVICES, help="auto: CUDA if available")
    resume: bool = option(
        False,
        switch="on",
        help="continue the search in RUN_DIR after its last epoch (bit-exact; a larger --epochs "
        "extends it, the epochs left following the cosine of the new total)",
    )
    force: bool = option(False, switch="on", help="start over, deleting RUN_DIR's run files")
    plot: bool = option(True, switch="either", help="write cells.dot/.png")
    progress_interval: float | None = option(
        None,
        **NONNEG,
        metavar="SECONDS",
        help="seconds between progress lines (default: 1 on a terminal, 30 otherwise; 0: none)",
    )

    def __post_init__(self) -> None:
        if self.ops is not None:
            self.ops = tuple(self.ops)
        self.validate()

    def validate(self) -> None:
        """UserError naming the first out-of-range option."""
        # deferred: both import torch, and this module is read by `derive --help`
        from derive.nas.archinit import ALPHA_INITS
        from derive.nas.searchdata import IMAGE_SIZES  # deferred: imports torch, as above

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
        self.start  # noqa: B018 (refuses --hb-init with --algo-init, or on the wrong space)
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
        check_option(self, "device")
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
        from derive.nas.archinit import start_name  # deferred: torch, as in validate

        return start_name(self.hb_init, self.algo_init)

    def lr_at(self, epoch: int) -> float:
        """Cosine annealing without restart: lr_min + (lr − lr_min)(1 + cos(π(e − 1)/E))/2, 1-based e.

        Epoch 1 runs at lr, as DARTS's schedule did on PyTorch 0.3."""
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
