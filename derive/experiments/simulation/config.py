"""The options of `derive simulate` (SCIS'23 appendix B.3, ACML'18 §5.3) and the five networks it compares.

What the papers state: untied fully connected networks inspired by GD (7), HB (10) with β = 0.3,
AGD (11), AGD all-history (12) and ADMM (13) (SCIS numbering), sigmoid Φ, 10,000 pairs (z₀, f) drawn
independently from N(0, I) in dimension 100, depths 10/20/30/40, 1,000 epochs, MSE reported.
What they do not state (our defaults, each an option): the optimizer (Adam), its learning rate (1e-3),
the batch size (the whole training set: 1,000 epochs are 1,000 Adam steps on the objective (B1)),
bias (none, as in T(z) = Φ(Wz)) and the initialization (PyTorch's nn.Linear default).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, replace

from derive import limits
from derive.errors import UserError, need
from derive.optionspec import check_option, option


@dataclass(frozen=True)
class Network:
    """One compared network: its generated fc module, fixed coefficients and the papers' names."""

    name: str  # derive algorithm name
    module: str  # generated module, loaded with derive.codegen.loader.load_generated
    label: str  # short label in tables and plots
    scis: str  # SCIS'23 equation number of the recurrence
    coefficients: tuple[tuple[str, float], ...] = ()


NETWORKS: dict[str, Network] = {
    n.name: n
    for n in (
        Network("gd", "gd_fc", "GD", "(7)"),
        Network("heavyball", "heavyball_fc", "HB", "(10)", (("beta", 0.3),)),
        Network("nesterov", "nesterov_fc", "AGD", "(11)"),
        Network("nesterov2", "nesterov2_fc", "AGD2", "(12)"),
        Network("admm", "admm_fc", "ADMM", "(13)"),
    )
}
ALIASES = {"hb": "heavyball", "agd": "nesterov", "agd2": "nesterov2"}
OPTIMIZERS = ("adam", "sgd")
INITS = ("default", "xavier", "orthogonal")
DEVICES = ("auto", "cpu", "cuda")
# Activations the generated fc modules know (their ACTIVATIONS table; a test checks the two agree).
ACTIVATIONS = (
    "sigmoid",
    "tanh",
    "softplus",
    "softsign",
    "relu",
    "leaky_relu",
    "elu",
    "swish",
    "gelu",
    "mish",
)

# The reduced run of `--quick` (about a minute on one core of a 2-core Xeon): what differs from the
# full configuration. Everything else (five networks, dimension 100, full batch, Adam 1e-3) is kept.
QUICK = {"samples": 1000, "epochs": 100, "depths": (10, 20)}


def network(name: str) -> Network:
    """The network for an algorithm name or alias (gd, hb/heavyball, agd/nesterov, agd2/nesterov2, admm)."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in NETWORKS:
        known = ", ".join(list(NETWORKS) + list(ALIASES))
        raise UserError(f"unknown algorithm {name!r} for the simulation; known: {known}")
    return NETWORKS[key]


def parse_names(text: str) -> tuple[str, ...]:
    """--algorithms A,B: comma-separated names (checked by `network` in the config)."""
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    if not values:
        raise ValueError("expected comma-separated algorithm names")
    return values


def parse_depths(text: str) -> tuple[int, ...]:
    """--depths D,D: comma-separated positive integers within limits.DEPTH."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated integers like 10,20, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"expected positive integers, got {text!r}")
    if max(values) > limits.DEPTH.high:
        raise ValueError(
            f"expected depths of at most {limits.DEPTH.high:,} ({limits.DEPTH.reason}), got {text!r}"
        )
    return values


def parse_batch(text: str) -> int | None:
    """--batch-size B|full: a positive integer up to the most --samples, or None for 'full'."""
    if text.strip().lower() == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a positive integer or 'full', got {text!r}") from None
    if value < 1:
        raise ValueError(f"expected a positive integer or 'full', got {text!r}")
    if value > limits.SIM_SAMPLES.high:
        raise ValueError(
            f"expected a batch of at most {limits.SIM_SAMPLES.high:,} (the most --samples), got {text!r}"
        )
    return value


POSITIVE = {"kind": int, "what": "a positive integer"}


@dataclass(frozen=True)
class SimulationConfig:
    """Every choice of a simulation run; the outputs record all of them.

    Each field that is a `derive simulate` option declares it here (derive.optionspec); the
    parser is built from these declarations in the help groups of derive.cli.simulate.
    """

    algorithms: tuple[str, ...] = option(
        tuple(NETWORKS),
        parse=parse_names,
        metavar="A,B",
        help="gd, heavyball (hb), nesterov (agd), nesterov2 (agd2), admm (default: all five)",
    )
    depths: tuple[int, ...] = option(
        (10, 20, 30, 40),
        parse=parse_depths,
        metavar="D,D",
        help=f"network depths (default: 10,20,30,40); each {limits.DEPTH.help()}",
    )
    samples: int = option(
        10_000,
        **POSITIVE,
        limit=limits.SIM_SAMPLES,
        metavar="N",
        help="training pairs (default: 10000)",
    )
    dim: int = option(
        100,
        **POSITIVE,
        limit=limits.SIM_DIM,
        metavar="N",
        help="dimension of z0 and f (default: 100)",
    )
    epochs: int = option(
        1000, **POSITIVE, limit=limits.SIM_EPOCHS, metavar="N", help="(default: 1000)"
    )
    # None: the whole training set (full-batch gradient steps)
    batch_size: int | None = option(
        None,
        parse=parse_batch,
        metavar="B|full",
        help="mini-batch size, or 'full' for the whole training set (default: full)",
    )
    optimizer: str = option("adam", choices=OPTIMIZERS, help="(default: adam)")
    lr: float = option(
        1e-3, kind=float, what="a positive number", help="learning rate (default: 0.001)"
    )
    momentum: float = option(  # SGD only
        0.9,
        kind=float,
        what="a number in [0, 1)",
        help="SGD momentum (default: 0.9; ignored by adam)",
    )
    bias: bool = option(
        False,
        switch="either",
        help="a bias in each layer's linear map (default: no, as in T(z) = Φ(Wz))",
    )
    init: str = option(
        "default",
        choices=INITS,
        help="weight init: PyTorch's nn.Linear default U(±1/√dim), xavier, orthogonal "
        "(default: default)",
    )
    activation: str = option("sigmoid", choices=ACTIVATIONS, help="Φ (default: sigmoid)")
    seed: int = option(
        0,
        kind=int,
        what="an integer >= 0",
        limit=limits.SEED,
        help="seed of the data, of each run's init and batch order (default: 0)",
    )
    device: str = option("auto", choices=DEVICES, help="auto: CUDA if available (default: auto)")
    compile: bool = option(
        False,
        switch="on",
        help="torch.compile each network (minutes of compiling; then AGD2 runs about 10x, "
        "ADMM 1.7x faster on the CPU)",
    )
    threads: int | None = None  # torch threads during the run (--threads); None: leave torch's
    # epochs between full-set MSE evaluations; None: epochs // 50
    eval_every: int | None = option(
        None,
        **POSITIVE,
        limit=limits.SIM_EPOCHS,
        metavar="N",
        help="epochs between evaluations of the whole training set (default: epochs/50)",
    )
    quick: bool = option(
        False,
        switch="on",
        help="reduced run, about a minute: 1,000 samples, 100 epochs, depths 10,20 "
        "(explicit options still override)",
    )
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithms", tuple(network(a).name for a in self.algorithms))
        object.__setattr__(self, "depths", tuple(self.depths))
        self.validate()

    def validate(self) -> None:
        """Raise UserError for any out-of-range value."""

        need(len(self.algorithms) > 0, "--algorithms needs at least one algorithm")
        need(
            len(set(self.algorithms)) == len(self.algorithms),
            f"--algorithms lists one twice: {','.join(self.algorithms)}",
        )
        need(len(self.depths) > 0, "--depths needs at least one depth")
        need(
            all(_is_int(d) and limits.DEPTH.holds(d) for d in self.depths),
            f"--depths must be integers between 1 and {limits.DEPTH.high:,}, got {list(self.depths)}",
        )
        need(len(set(self.depths)) == len(self.depths), f"--depths lists one twice: {self.depths}")
        for flag, value, limit in (
            ("--samples", self.samples, limits.SIM_SAMPLES),
            ("--dim", self.dim, limits.SIM_DIM),
            ("--epochs", self.epochs, limits.SIM_EPOCHS),
            ("--seed", self.seed, limits.SEED),
        ):
            need(_is_int(value), f"{flag} must be an integer, got {value!r}")
            limit.check(value, flag)
        need(
            self.batch_size is None or (_is_int(self.batch_size) and self.batch_size >= 1),
            f"--batch-size must be a positive integer or 'full', got {self.batch_size}",
        )
        check_option(self, "optimizer")
        need(
            math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}"
        )
        need(
            math.isfinite(self.momentum) and 0 <= self.momentum < 1,
            f"--momentum must be in [0, 1), got {self.momentum}",
        )
        for name in ("activation", "init", "device"):
            check_option(self, name)
        need(
            self.threads is None or (_is_int(self.threads) and limits.THREADS.holds(self.threads)),
            f"--threads must be between 1 and {limits.THREADS.high:,}, got {self.threads}",
        )
        need(
            self.eval_every is None or (_is_int(self.eval_every) and self.eval_every >= 1),
            f"--eval-every must be at least 1, got {self.eval_every}",
        )

    @property
    def effective_batch_size(self) -> int:
        """The batch size actually used (the whole set when batch_size is None or larger)."""
        return min(self.batch_size or self.samples, self.samples)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.samples / self.effective_batch_size)

    @property
    def effective_eval_every(self) -> int:
        return self.eval_every or max(1, self.epochs // 50)

    def checkpoints(self) -> list[int]:
        """Epochs after which the whole training set is evaluated (0 = at initialization).

        Every `effective_eval_every` epochs, the last epoch, and 1, 2, 5, 10, 20, 50, ... for the log axis.
        """
        every = self.effective_eval_every
        marks = {0, self.epochs} | set(range(every, self.epochs + 1, every))
        marks |= {m * 10**k for k in range(len(str(self.epochs))) for m in (1, 2, 5)}
        return sorted(e for e in marks if e <= self.epochs)

    def runs(self) -> list[tuple[str, int]]:
        """(algorithm, depth) pairs in the order they are trained: by depth, then algorithm."""
        return [(a, d) for d in sorted(self.depths) for a in self.algorithms]

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["algorithms"] = list(self.algorithms)
        d["depths"] = list(self.depths)
        d["notes"] = list(self.notes)
        d["effective_batch_size"] = self.effective_batch_size
        d["eval_every_effective"] = self.effective_eval_every
        return d

    def quick_version(self) -> SimulationConfig:
        """This config with the --quick reductions applied (see QUICK)."""
        return replace(self, quick=True, **QUICK)


def config_seed(seed: int, algorithm: str, depth: int) -> int:
    """The seed of one (algorithm, depth) run: independent of which other runs are in the config."""
    digest = hashlib.sha256(f"derive-simulate:{seed}:{algorithm}:{depth}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
