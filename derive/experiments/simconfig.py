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
from derive.errors import UserError


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


@dataclass(frozen=True)
class SimulationConfig:
    """Every choice of a simulation run; the outputs record all of them."""

    algorithms: tuple[str, ...] = tuple(NETWORKS)
    depths: tuple[int, ...] = (10, 20, 30, 40)
    samples: int = 10_000
    dim: int = 100
    epochs: int = 1000
    batch_size: int | None = None  # None: the whole training set (full-batch gradient steps)
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    bias: bool = False
    init: str = "default"
    activation: str = "sigmoid"
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    threads: int | None = None  # torch threads during the run; None: leave torch's setting
    eval_every: int | None = None  # epochs between full-set MSE evaluations; None: epochs // 50
    quick: bool = False
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithms", tuple(network(a).name for a in self.algorithms))
        object.__setattr__(self, "depths", tuple(self.depths))
        self.validate()

    def validate(self) -> None:
        """Raise UserError for any out-of-range value."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise UserError(message)

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
        for option, value, limit in (
            ("--samples", self.samples, limits.SIM_SAMPLES),
            ("--dim", self.dim, limits.SIM_DIM),
            ("--epochs", self.epochs, limits.SIM_EPOCHS),
            ("--seed", self.seed, limits.SEED),
        ):
            need(_is_int(value), f"{option} must be an integer, got {value!r}")
            limit.check(value, option)
        need(
            self.batch_size is None or (_is_int(self.batch_size) and self.batch_size >= 1),
            f"--batch-size must be a positive integer or 'full', got {self.batch_size}",
        )
        need(
            self.optimizer in OPTIMIZERS,
            f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}",
        )
        need(
            math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}"
        )
        need(
            math.isfinite(self.momentum) and 0 <= self.momentum < 1,
            f"--momentum must be in [0, 1), got {self.momentum}",
        )
        need(
            self.activation in ACTIVATIONS,
            f"--activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}",
        )
        need(self.init in INITS, f"--init must be one of {', '.join(INITS)}, got {self.init!r}")
        need(
            self.device in DEVICES,
            f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}",
        )
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
