"""The bounds of every size a user chooses, each with its reason.

One table for the whole project: the CLI's argparse types (derive.cli.argtypes.number) show the
bound and its reason in --help and refuse values outside it, and the configs (TrainConfig,
SimulationConfig) check the same bounds for callers of the Python API. Reasons that quote a time
were measured on the 2-core Xeon of the development machines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from derive.errors import UserError


@dataclass(frozen=True)
class Limit:
    """An inclusive range [low, high] for one size, and why it ends there."""

    low: float
    high: float
    reason: str
    high_text: str = ""  # how to print `high` when digits would not help (2^64 - 1)

    def help(self) -> str:
        """'at most 1,000: why' (the text --help shows)."""
        return f"at most {self.high_text or format_number(self.high)}: {self.reason}"

    def holds(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return math.isfinite(value) and self.low <= value <= self.high

    def check(self, value: object, option: str) -> None:
        """UserError unless low <= value <= high."""
        if not self.holds(value):
            raise UserError(
                f"{option} must be between {format_number(self.low)} and "
                f"{self.high_text or format_number(self.high)} "
                f"({self.reason}), got {value!r}"
            )


def format_number(value: float) -> str:
    """1000 → '1,000'; 0.5 → '0.5'."""
    return f"{value:,}" if float(value).is_integer() else f"{value:g}"


SEED = Limit(0, 2**64 - 1, "torch.Generator.manual_seed takes an unsigned 64-bit seed", "2^64 - 1")
THREADS = Limit(
    1, 1024, "more threads than cores only slow torch down, and 10^6 crash its OpenMP pool"
)

# derive train --warmup-steps
WARMUP_STEPS = Limit(
    0,
    10_000_000,
    "more optimizer steps than any CIFAR or ImageNet recipe has (300 CIFAR epochs at batch 64 are "
    "235,000)",
)

# derive stability run
STABILITY_EPOCHS = Limit(
    1, 300, "the papers' recipe has 300 epochs; up to 150 keep its lr 0.1, the study's premise"
)
PROBE_STEPS = Limit(
    1, 10_000, "the probe replays the first epoch's steps; CIFAR-10 has 782 at batch 64"
)
STUDY_WORKERS = Limit(1, 64, "one process per run; more than the cores only share them")

# derive network --show
SHOW_DEPTH = Limit(
    1,
    6,
    "exact schedules grow super-exponentially: nesterov2 takes 6 s at depth 6 and 33 s at "
    "depth 7 on a 2-core Xeon",
)
# The deepest network the generated code is checked for: user specs' schedules and coefficients
# are evaluated for k = 0 ... MAX_DEPTH + 1 before any code is written (derive.algorithms.validate).
MAX_DEPTH = 1000
DEPTH = Limit(
    1,
    MAX_DEPTH,
    "the deepest network derive checks a user algorithm's schedules for (the papers go to 40)",
)

# derive activation --expr: one wall-clock budget for the whole derivation
ACTIVATION_SECONDS_DEFAULT = 60.0
ACTIVATION_SECONDS = Limit(
    1, 3600, "an hour; analyses still running then are better reported undecided than awaited"
)

# user algorithm specs (TOML)
LOOKBACK = Limit(
    0, 16, "each step of look-back keeps one more feature map per block in the generated network"
)
MAX_EXPONENT = 16  # |n| in a power v**n (a product of 16 copies is the most a layer should compute)
MAX_CONSTANT = 1e100  # |value| of a constant in a spec, after folding (9**16**16 never gets built)

# derive simulate
SIM_SAMPLES = Limit(
    1, 10_000_000, "10^7 pairs in dimension 100 are 8 GB; memory is checked before the run"
)
SIM_DIM = Limit(1, 10_000, "a dim x dim weight per layer: 400 MB per layer at 10,000")
SIM_EPOCHS = Limit(1, 1_000_000, "the papers use 1,000; every evaluation is kept in curves.csv")

# derive train
TRAIN_EPOCHS = Limit(1, 100_000, "the papers use 300; the checkpoint keeps a row per epoch")
TRAIN_BATCH = Limit(1, 50_000, "CIFAR has 50,000 training images; a larger batch is the whole set")
EVAL_BATCH = Limit(1, 10_000, "CIFAR has 10,000 test images; a larger batch is the whole set")
PAD = Limit(0, 32, "a 32x32 crop cannot move by more than the image's size")
CUTOUT = Limit(0, 32, "the side of the image")
PROGRESS_INTERVAL = Limit(0, 86_400, "a day; 0 turns the progress lines off")
CHECKPOINT_MINUTES = Limit(
    0, 1440, "a day; 0 writes checkpoints only after each epoch and when the run is interrupted"
)
CHECKPOINT_STEPS = Limit(
    1, 10_000_000, "the most optimizer steps any recipe has (see --warmup-steps)"
)
# derive train --dataset imagenet, and distributed runs (torchrun)
IMAGE_SIZE = Limit(
    32, 1024, "the ImageNet networks downsample by 32; a 1024-pixel crop is 21x the papers' 224"
)
COLOR_JITTER = Limit(0, 1, "a factor 1 + U(-F, F) below 0 would invert colours")
LIGHTING = Limit(0, 1, "PCA noise 10x fb.resnet.torch's 0.1 already swamps the image")
WORKERS = Limit(0, 64, "loader processes per rank; more than a node's cores only adds memory")
DIST_TIMEOUT = Limit(10, 86_400, "a day: past it a silent rank counts as lost")

# derive nas search and derive nas network: one size rule for the search supernet and the evaluation
# network (derive.nas.supernet, derive.nas.codegen), so a cell searched at C channels and N cells
# can always be evaluated at them. Parameter counts: darts_v2 / the darts supernet, on the meta device.
NAS_CELLS = Limit(
    3,
    100,
    "DARTS searches 8 cells and evaluates 20; at 100 the 36-channel network has 1.8·10^7 parameters",
)
NAS_CELLS_LOW = "the reduction cells at N//3 and 2N//3 must be two distinct cells after the first"
NAS_CHANNELS = Limit(
    2,
    256,
    "DARTS searches at 16 and evaluates at 36; at 256 the 20-cell network has 1.6·10^8 parameters "
    "and the 8-cell supernet 3.8·10^8",
)
NAS_CHANNELS_EVEN = "a factorized reduction splits its output channels into two halves"


# genotype.json (the searched cell written by derive nas search), read by derive nas network and
# derive.nas.load_genotype
NAS_NODES = Limit(
    1,
    32,
    "the cells of DARTS and SCIS have 4 nodes; every node is one more feature map each cell keeps",
)
NAS_NODE_INPUTS = Limit(
    1,
    64,
    "DARTS keeps 2 inputs per node and the heavy-ball space 3; a user algorithm's look-back of at "
    "most 16 gives at most 34 (a T-term and a state term per lag)",
)
GENOTYPE_BYTES = 1_000_000  # a genotype.json at both bounds above is about 100 KB


def check_nas_sizes(channels: object, cells: object) -> None:
    """UserError unless `cells` and `channels` are integers within NAS_CELLS / NAS_CHANNELS and
    `channels` is even (the one size check of `derive nas search` and `derive nas network`)."""
    for option, value in (("--cells", cells), ("--channels", channels)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{option} must be an integer, got {value!r}")
    if cells < NAS_CELLS.low:  # type: ignore[operator]
        raise UserError(
            f"--cells must be at least {format_number(NAS_CELLS.low)} ({NAS_CELLS_LOW}), got {cells}"
        )
    NAS_CELLS.check(cells, "--cells")
    NAS_CHANNELS.check(channels, "--channels")
    if channels % 2:  # type: ignore[operator]
        raise UserError(f"--channels must be even ({NAS_CHANNELS_EVEN}), got {channels}")


# text a user gives that ends up in files or figures
TITLE_CHARS = 200
