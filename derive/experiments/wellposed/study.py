"""One run of the well-posed simulation: an untied network of an algorithm learns z₀ ↦ z*(z₀).

The network is the algorithm's generated fc module (`generated/ALGO_fc.py`) with a weight per
layer, its input z₀ both the start and the injected input u (b = U*z₀). Started from the teacher
(every layer W*) it IS `depth` iterations of the algorithm on F: its test error before training is
the optimizer's own error after `depth` iterations. Weights are then learned per layer, as in the
papers' simulation (full-batch Adam on the training MSE), from that start or from PyTorch's
default initialisation; the error that counts is the MSE on held-out pairs, divided by the mean
variance of the held-out targets (1 = predicting their mean).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from derive.codegen.loader import load_generated
from derive.experiments.wellposed.teacher import Pairs, Teacher, make_pairs, make_teacher

ALGORITHMS: tuple[tuple[str, str], ...] = (
    ("gd", "GD"),
    ("heavyball", "HB"),
    ("nesterov", "AGD"),
    ("nesterov2", "AGD2"),
    ("admm", "ADMM"),
    ("nesterov_sc", "Nesterov-SC"),
    ("triple_momentum", "TMM"),
)
"""(generated module prefix, label): the algorithms of the study, the papers' five first."""

KAPPA_COEFFICIENTS = ("nesterov_sc", "triple_momentum")
"""Algorithms whose coefficient κ is set to the teacher's κ (the others keep their defaults)."""

STARTS = ("teacher", "random")


@dataclass(frozen=True)
class Setting:
    """What every run shares: sizes, the recipe and the input distribution."""

    dim: int = 16
    train: int = 512
    test: int = 1024
    steps: int = 200
    lr_teacher: float = 1e-3  # a refinement of the optimizer's weights
    lr_random: float = 1e-2  # learning from scratch
    input_mean: float = -0.5
    input_std: float = 0.3


@dataclass(frozen=True)
class RunKey:
    """One run of the grid."""

    kappa: float
    algorithm: str
    depth: int
    start: str
    seed: int


@dataclass(frozen=True)
class RunResult:
    """A run's numbers: relative test errors before (the optimizer's) and after learning."""

    kappa: float
    algorithm: str
    depth: int
    start: str
    seed: int
    optimizer_error: float
    initial_error: float
    test_error: float
    train_error: float
    seconds: float

    def row(self) -> dict[str, object]:
        return asdict(self)


def task(setting: Setting, kappa: float, seed: int) -> tuple[Teacher, Pairs, Pairs]:
    """The seed's teacher and its training and held-out pairs (the same for every algorithm)."""
    rng = np.random.default_rng([seed, int(round(kappa))])
    teacher = make_teacher(setting.dim, kappa, rng)
    mean, std = setting.input_mean, setting.input_std
    train = make_pairs(teacher, setting.train, rng, mean, std)
    return teacher, train, make_pairs(teacher, setting.test, rng, mean, std)


def build_network(key: RunKey, setting: Setting, teacher: Teacher) -> nn.Module:
    """The untied float64 network of key.algorithm; every layer W* for the teacher start."""
    module = load_generated(f"{key.algorithm}_fc")
    coefficients = {"kappa": key.kappa} if key.algorithm in KAPPA_COEFFICIENTS else {}
    torch.manual_seed(key.seed * 1000 + key.depth)
    network = module.build_untied(setting.dim, "sigmoid", key.depth, **coefficients).double()
    if key.start == "teacher":
        with torch.no_grad():
            for layer in network.layers:
                layer.linear.weight.copy_(torch.from_numpy(teacher.weight))
    return network


def relative_error(network: nn.Module, pairs: Pairs) -> float:
    """Mean squared error over the mean sample variance (n − 1) of the targets (float64)."""
    inputs, targets = torch.from_numpy(pairs.inputs), torch.from_numpy(pairs.targets)
    with torch.no_grad():
        mse = torch.mean((network(inputs, inputs) - targets) ** 2).item()
    return mse / float(targets.var(dim=0).mean())


def train(network: nn.Module, pairs: Pairs, setting: Setting, start: str) -> None:
    """Full-batch Adam on the training MSE, `setting.steps` steps, the start's learning rate."""
    inputs, targets = torch.from_numpy(pairs.inputs), torch.from_numpy(pairs.targets)
    lr = setting.lr_teacher if start == "teacher" else setting.lr_random
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    for _ in range(setting.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.mean((network(inputs, inputs) - targets) ** 2)
        loss.backward()
        optimizer.step()


def run_one(key: RunKey, setting: Setting) -> RunResult:
    """Build, measure the optimizer's error, learn, measure again."""
    started = time.perf_counter()
    teacher, train_pairs, test_pairs = task(setting, key.kappa, key.seed)
    optimizer_error = relative_error(
        build_network(replace_start(key), setting, teacher), test_pairs
    )
    network = build_network(key, setting, teacher)
    initial_error = relative_error(network, test_pairs)
    train(network, train_pairs, setting, key.start)
    return RunResult(
        key.kappa,
        key.algorithm,
        key.depth,
        key.start,
        key.seed,
        optimizer_error,
        initial_error,
        relative_error(network, test_pairs),
        relative_error(network, train_pairs),
        time.perf_counter() - started,
    )


def replace_start(key: RunKey) -> RunKey:
    """The same run started from the teacher (whose untrained network is the optimizer)."""
    return RunKey(key.kappa, key.algorithm, key.depth, "teacher", key.seed)
