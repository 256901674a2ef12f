"""The multi-stream conv form: several T-terms and several states become one block per step.

With T = Φ(W·) fixed (a linear map, then the activation) and the coefficients the algorithm gives,
a stage of conv blocks must run the optimizer itself: its output is U⁻¹x_K for the x_K of the
optimizer written independently with numpy in tests/test_fc_matches_optimizer.py. Every textbook
method, from a built-in or a TOML spec, then becomes a CIFAR network that trains one step.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_fc_matches_optimizer import reference, spd_and_sqrt
from torch import nn
from train_fixtures import single_thread, write_cifar10  # noqa: F401

from derive.algorithms import get_algorithm, recurrence_of
from derive.algorithms.forms import StreamsForm, engineering_form
from derive.cli import main
from derive.codegen.generate import generate
from derive.codegen.loader import load_generated

QHM_TWO_STATES = """
name = "qhm_spec"
title = "Quasi-hyperbolic momentum"
states = ["x", "m"]
[coefficients]
beta = 0.9
nu = 0.7
[update]
"m[k+1]" = "beta*m[k] + (1 - beta)*grad(x[k])"
"x[k+1]" = "x[k] - ((1 - nu)*grad(x[k]) + nu*m[k+1])"
[initial]
"m[0]" = "0"
"""

QHM_ONE_STATE = """
name = "qhm_one_state"
title = "Quasi-hyperbolic momentum, one state"
states = ["x"]
[coefficients]
beta = 0.9
nu = 0.7
[update]
"x[k+1]" = "x[k] + beta*(x[k] - x[k-1]) - (1 - nu*beta)*grad(x[k]) + beta*(1 - nu)*grad(x[k-1])"
[initial]
"x[-1]" = "x[0]"
"""
"""QHM with m eliminated: xₖ₊₁ − xₖ − β(xₖ − xₖ₋₁) = −(1 − νβ)∇f(xₖ) + β(1 − ν)∇f(xₖ₋₁),
from m_{k+1} = βm_k + (1 − β)∇f(x_k) and x_{k+1} = x_k − (1 − ν)∇f(x_k) − νm_{k+1} (by hand).
It holds for k ≥ 1; started from x₋₁ = x₀ (so ∇f(x₋₁) = ∇f(x₀)) rather than m₀ = 0, its first
step differs from QHM's, so it has its own reference below."""


def qhm_one_state(x0: np.ndarray, u: np.ndarray, depth: int, beta: float, nu: float) -> np.ndarray:
    """The one-state recursion in x-space with numpy, x₋₁ = x₀, ∇f(X) = X − Φ(XU)U."""

    def grad(x: np.ndarray) -> np.ndarray:
        return x - np.tanh(x @ u) @ u

    prev, x = x0, x0
    for _ in range(depth):
        step = beta * (x - prev) - (1 - nu * beta) * grad(x) + beta * (1 - nu) * grad(prev)
        prev, x = x, x + step
    return x


NESTEROV_SPEC = """
name = "nesterov_spec"
states = ["x"]
[coefficients]
beta = 0.5
[let]
"y[k]" = "x[k] + beta*(x[k] - x[k-1])"
[update]
"x[k+1]" = "y[k] - grad(y[k])"
[initial]
"x[-1]" = "x[0]"
"""


EXTRAGRADIENT_ONE_STATE = """
name = "eg_one_state"
states = ["x"]
[update]
"x[k+1]" = "x[k] - grad(x[k] - grad(x[k]))"
"""


def spec_module(tmp_path: Path, text: str) -> ModuleType:
    """`derive network --algo SPEC --form conv` as an imported module."""
    spec = tmp_path / "spec.toml"
    spec.write_text(text, encoding="utf-8")
    generated = generate(str(spec), "conv")
    path = tmp_path / generated.filename
    path.write_text(generated.source, encoding="utf-8")
    name = f"streams_test_{path.stem}_{abs(hash(str(tmp_path)))}"
    loaded = importlib.util.spec_from_file_location(name, path)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    sys.modules[name] = module
    loaded.loader.exec_module(module)
    return module


class FixedT(nn.Module):
    """T(z) = Φ(Wz) on rows of z (W symmetric): the map the derivation relaxes."""

    def __init__(self, w: np.ndarray) -> None:
        super().__init__()
        self.w = torch.tensor(w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z @ self.w)


def conv_stage(module: ModuleType, depth: int, w: np.ndarray, **coefficients: float) -> nn.Module:
    """A stage of `depth` blocks with every T fixed to Φ(W·) and the algorithm's coefficients."""
    t = FixedT(w)
    blocks = []
    for k in range(depth):
        derived = module.block_coefficients(k, **coefficients)
        if module.FORM == "streams":
            blocks.append(module.Block([t] * len(module.BRANCHES), derived))
        else:
            blocks.append(module.Block(t, derived))
    if hasattr(module, "output_weights"):
        return module.Stage(blocks, None, module.output_weights(**coefficients))
    return module.Stage(blocks)


def optimizer_z(algo: str, z0: np.ndarray, u: np.ndarray, depth: int, **c: float) -> np.ndarray:
    """U⁻¹x_K of the optimizer run in x-space from x₀ = Uz₀."""
    x = reference(algo, z0 @ u, u, np.tanh, depth, **c)
    return np.linalg.solve(u, x.T).T


BUILT_IN_CASES = [
    ("qhm", {}),
    ("qhm", {"beta": 0.5, "nu": 0.3}),
    ("extragradient", {}),
    ("heavyball_velocity", {}),
    ("heavyball_velocity", {"beta": 0.8}),
    ("heavyball", {}),
    ("nesterov", {}),
    ("triple_momentum", {}),
]


@pytest.mark.parametrize("algo,coefficients", BUILT_IN_CASES)
def test_conv_stage_with_fixed_t_is_the_optimizer(algo: str, coefficients: dict) -> None:
    n, batch, depth = 5, 3, 8
    w, u = spd_and_sqrt(n, seed=len(algo))
    z0 = np.random.default_rng(3).normal(size=(batch, n))
    stage = conv_stage(load_generated(f"{algo}_conv"), depth, w, **coefficients)
    with torch.no_grad():
        z = stage(torch.tensor(z0)).numpy()
    np.testing.assert_allclose(z, optimizer_z(algo, z0, u, depth, **coefficients), atol=1e-9)


@pytest.mark.parametrize("text", [QHM_TWO_STATES, QHM_ONE_STATE], ids=["two_states", "one_state"])
def test_qhm_specs_conv_stage_is_qhm(tmp_path: Path, text: str) -> None:
    """Both ways of writing QHM give conv stages that run QHM (the one-state one reuses T of the
    previous block for ∇f(xₖ₋₁))."""
    n, batch, depth = 4, 2, 7
    w, u = spd_and_sqrt(n, seed=11)
    z0 = np.random.default_rng(4).normal(size=(batch, n))
    module = spec_module(tmp_path, text)
    assert module.T_EVALUATIONS == 1
    stage = conv_stage(module, depth, w, beta=0.6, nu=0.4)
    with torch.no_grad():
        z = stage(torch.tensor(z0)).numpy()
    if text == QHM_TWO_STATES:
        expected = optimizer_z("qhm", z0, u, depth, beta=0.6, nu=0.4)
        wrong = optimizer_z("qhm", z0, u, depth, beta=0.6, nu=0.45)
    else:
        expected = np.linalg.solve(u, qhm_one_state(z0 @ u, u, depth, 0.6, 0.4).T).T
        wrong = np.linalg.solve(u, qhm_one_state(z0 @ u, u, depth, 0.6, 0.45).T).T
    np.testing.assert_allclose(z, expected, atol=1e-9)
    assert not np.allclose(z, wrong, atol=1e-6)  # the comparison can fail


def test_one_state_qhm_costs_one_t_per_block_and_reuses_the_previous_output(tmp_path: Path) -> None:
    module = spec_module(tmp_path, QHM_ONE_STATE)
    assert module.BRANCHES == {"branch": (True, 1)}
    assert "T₁ₖ₋₁ is the output of branch T₁ of block k − 1" in " ".join(module.__doc__.split())
    calls = []

    class Counting(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            return torch.tanh(z)

    blocks = [module.Block([Counting()], module.block_coefficients(k)) for k in range(5)]
    module.Stage(blocks)(torch.randn(2, 3))
    assert len(calls) == 5


def test_extragradient_evaluates_t_twice_per_block_at_its_second_point() -> None:
    module = load_generated("extragradient_conv")
    assert module.T_EVALUATIONS == 2
    # T₂ reads the extrapolated point of this block, so even the first block's T₂ works at the
    # stage's resolution: built without stride, from the stage's channels.
    assert module.BRANCHES == {"branch": (True, 0), "branch2": (False, 0)}
    net = module.cifar_resnet(depth=8)
    first = net.stages[1].blocks[0]
    assert first.branch.conv1.stride == (2, 2) and first.branch.conv1.in_channels == 16
    assert first.branch2.conv1.stride == (1, 1) and first.branch2.conv1.in_channels == 32
    assert "A block evaluates T 2 times (T₁, T₂)" in " ".join(module.__doc__.split())


def test_velocity_heavy_ball_network_is_the_c1_heavy_ball_network() -> None:
    """Same weights loaded, same output: vₖ = zₖ − zₖ₋₁ makes the two forms one network (no ρ)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    hb, hbv = load_generated("heavyball_conv"), load_generated("heavyball_velocity_conv")
    for beta in (0.3, 1.0):
        c1 = hb.cifar_resnet(
            depth=20, post_activation=False, algorithm_coefficients={"beta": beta}
        ).eval()
        velocity = hbv.cifar_resnet(
            depth=20, post_activation=False, algorithm_coefficients={"beta": beta}
        ).eval()
        assert list(c1.state_dict()) == list(velocity.state_dict())
        velocity.load_state_dict(c1.state_dict())
        with torch.no_grad():
            expected, got = c1(x), velocity(x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())
    # and HBNet's coefficients (β₁ = 1, β₂ = −1) are β = 1: different weights give another output
    other = hbv.cifar_resnet(depth=20, post_activation=False, algorithm_coefficients={"beta": 1.0})
    with torch.no_grad():
        assert not torch.allclose(other.eval()(x), expected, atol=1e-3)


def test_spec_networks_train_one_step_with_derive_train(tmp_path: Path) -> None:
    """`derive network --algo qhm.toml --out DIR` (both forms), then `derive train` on fake CIFAR."""
    write_cifar10(tmp_path / "data", per_file=8, n_test=8)
    for i, text in enumerate((QHM_TWO_STATES, QHM_ONE_STATE)):
        spec = tmp_path / f"qhm{i}.toml"
        spec.write_text(text, encoding="utf-8")
        out = tmp_path / f"net{i}"
        assert main(["-q", "network", "--algo", str(spec), "--out", str(out)]) == 0
        (network,) = out.glob("*_conv.py")
        argv = ["-q", "train", str(network), "--data-dir", str(tmp_path / "data")]
        argv += ["--out", str(tmp_path / f"run{i}"), "--epochs", "1", "--batch-size", "40"]
        argv += ["--model-arg", "depth=8", "--progress-interval", "0"]
        assert main(argv) == 0
        assert (tmp_path / f"run{i}" / "summary.json").is_file()


TEXTBOOK = [
    ("gd", None),
    ("heavyball", None),
    ("heavyball_velocity", None),
    ("nesterov", None),
    ("nesterov_spec", NESTEROV_SPEC),
    ("nesterov2", None),
    ("admm", None),
    ("qhm", None),
    ("qhm_spec", QHM_TWO_STATES),
    ("extragradient", None),
    ("eg_one_state", EXTRAGRADIENT_ONE_STATE),
    ("triple_momentum", None),
]


@pytest.mark.parametrize("name,spec", TEXTBOOK, ids=[n for n, _ in TEXTBOOK])
def test_textbook_methods_become_conv_networks_that_train(
    tmp_path: Path, name: str, spec: str | None
) -> None:
    """Built-in or spec → conv network → one SGD step: finite loss, every weight gets a gradient."""
    torch.manual_seed(0)
    module = spec_module(tmp_path, spec) if spec else load_generated(f"{name}_conv")
    if module.FORM == "dense":
        model = module.cifar_densenet(depth=10, growth=4)
    else:
        model = module.cifar_resnet(depth=14, widths=(4, 8, 8))
    assert_one_sgd_step_trains(model)


def assert_one_sgd_step_trains(model: nn.Module) -> None:
    """One SGD step on a CIFAR-shaped batch: finite loss, every weight gets a finite gradient, and
    the step changes the weights."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    before = [p.detach().clone() for p in model.parameters()]
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_forms_pass_picks_the_multi_stream_form_only_where_lagged_does_not_fit() -> None:
    for name in ("qhm", "extragradient", "heavyball_velocity"):
        assert isinstance(engineering_form(recurrence_of(get_algorithm(name))), StreamsForm)
    for name in ("gd", "heavyball", "nesterov", "triple_momentum"):
        assert not isinstance(engineering_form(recurrence_of(get_algorithm(name))), StreamsForm)


def test_a_gradient_at_a_gradient_step_gets_a_branch_of_its_own(tmp_path: Path) -> None:
    """∇f(x − ∇f(x)) in one state: T₂ reads T₁'s output; the network is the built-in
    extragradient's (two streams, y computed first), weight for weight."""
    module = spec_module(tmp_path, EXTRAGRADIENT_ONE_STATE)
    assert module.T_EVALUATIONS == 2
    assert module.BRANCHES == {"branch": (True, 0), "branch2": (False, 0)}
    assert "T₂(T₁(zₖ))" in module.__doc__
    n, batch, depth = 4, 2, 6
    w, u = spd_and_sqrt(n, seed=5)
    z0 = np.random.default_rng(6).normal(size=(batch, n))
    with torch.no_grad():
        z = conv_stage(module, depth, w)(torch.tensor(z0)).numpy()
    np.testing.assert_allclose(z, optimizer_z("extragradient", z0, u, depth), atol=1e-9)
    torch.manual_seed(0)
    one = module.cifar_resnet(depth=14, widths=(4, 8, 8)).eval()
    two = load_generated("extragradient_conv").cifar_resnet(depth=14, widths=(4, 8, 8)).eval()
    two.load_state_dict(one.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(one(x), two(x), rtol=1e-5, atol=1e-5)


LOOKAHEAD_SPEC = """
name = "lookahead_correction"
states = ["x"]
[coefficients]
beta = 0.4
gamma = 0.3
[let]
"y[k]" = "x[k] + beta*(x[k] - x[k-1])"
[update]
"x[k+1]" = "y[k] - grad(y[k]) + gamma*(grad(y[k-1]) - grad(x[k]))"
[initial]
"x[-1]" = "x[0]"
"x[-2]" = "x[0]"
"""
"""Gradients at a combination point (Nesterov's yₖ, as in (C2)), at yₖ₋₁ and at xₖ."""


def lookahead_reference(x0: np.ndarray, u: np.ndarray, depth: int) -> np.ndarray:
    """The spec's iteration with numpy: x₋₂ = x₋₁ = x₀, ∇f(X) = X − Φ(XU)U."""

    def grad(x: np.ndarray) -> np.ndarray:
        return x - np.tanh(x @ u) @ u

    xs = [x0, x0, x0]
    for _ in range(depth):
        x, x1, x2 = xs[-1], xs[-2], xs[-3]
        y, y1 = x + 0.4 * (x - x1), x1 + 0.4 * (x1 - x2)
        xs.append(y - grad(y) + 0.3 * (grad(y1) - grad(x)))
    return xs[-1]


def test_gradients_at_a_combination_point_and_its_previous_value(tmp_path: Path) -> None:
    """T(yₖ) is a branch with its own combination (from the stage input at k = 0), T(yₖ₋₁) is that
    branch's output of block k − 1, T(zₖ) another branch: two T evaluations per block."""
    module = spec_module(tmp_path, LOOKAHEAD_SPEC)
    assert module.T_EVALUATIONS == 2
    assert module.BRANCHES == {"branch": (True, 1), "branch2": (True, 0)}
    n, batch, depth = 4, 3, 7
    w, u = spd_and_sqrt(n, seed=9)
    z0 = np.random.default_rng(10).normal(size=(batch, n))
    with torch.no_grad():
        z = conv_stage(module, depth, w)(torch.tensor(z0)).numpy()
    expected = np.linalg.solve(u, lookahead_reference(z0 @ u, u, depth).T).T
    np.testing.assert_allclose(z, expected, atol=1e-9)


SCHEDULED_SPEC = """
name = "scheduled_two_states"
states = ["x", "m"]
output = "x[k] + 0.5*m[k]"
[coefficients]
beta = 0.5
[update]
"m[k+1]" = "mom[k]*m[k] + grad(x[k])"
"x[k+1]" = "x[k] - m[k+1] + beta*(x[k] - x[k-1])"
[initial]
"m[0]" = "0"
"x[-1]" = "x[0]"
[schedules]
mom = "(k + 1)/(k + 3)"
"""
"""Two streams, a schedule, a look-back and an output that combines the streams."""


def test_schedules_look_backs_and_a_combined_readout(tmp_path: Path) -> None:
    module = spec_module(tmp_path, SCHEDULED_SPEC)
    assert module.READOUT == (("z", 0), ("z_m", 0))
    n, batch, depth = 4, 2, 6
    w, u = spd_and_sqrt(n, seed=12)
    z0 = np.random.default_rng(13).normal(size=(batch, n))
    with torch.no_grad():
        z = conv_stage(module, depth, w, beta=0.25)(torch.tensor(z0)).numpy()

    def grad(x: np.ndarray) -> np.ndarray:
        return x - np.tanh(x @ u) @ u

    x0 = z0 @ u
    prev, x, m = x0, x0, np.zeros_like(x0)
    for kk in range(depth):
        m = (kk + 1) / (kk + 3) * m + grad(x)
        prev, x = x, x - m + 0.25 * (x - prev)
    expected = np.linalg.solve(u, (x + 0.5 * m).T).T
    np.testing.assert_allclose(z, expected, atol=1e-9)


REFUSED = [
    (
        """
name = "t_output"
states = ["x", "m"]
output = "x[k] - grad(x[k])"
[update]
"m[k+1]" = "m[k] + grad(x[k])"
"x[k+1]" = "x[k] - m[k+1]"
[initial]
"m[0]" = "0"
""",
        "applies T; a stage reads out a combination of states",
    ),
    (
        """
name = "grad_start"
states = ["x", "m"]
[update]
"m[k+1]" = "m[k] + grad(x[k])"
"x[k+1]" = "x[k] - m[k+1]"
[initial]
"m[0]" = "grad(x[0])"
""",
        "restart every stream at the stage input or at 0",
    ),
]


@pytest.mark.parametrize("text,message", REFUSED, ids=["t_in_output", "gradient_start"])
def test_what_no_block_expresses_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(text, encoding="utf-8")
    assert main(["network", "--algo", str(spec), "--form", "conv", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.py"))
