"""Search spaces read from the forms pass, checked against the iterates they describe.

A bounded space says z_{k+1} = Σ_edges c·(T or identity)(z_{k−lag}). Here that sum is compared with
the iterates computed two other ways: `Recurrence.unroll` (the IR run symbolically, exact
coefficients) and the optimizers run directly in NumPy (x = z, U = I, T(z) = z − ∇f(z)).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive.algorithms import recurrence_of
from derive.algorithms.schedules import ScheduleTable
from derive.algorithms.symbols import T, vector
from derive.errors import UserError
from derive.nas.spaces import MERGED_ROLE, STATE_ROLE, T_ROLE, SearchSpace, resolve_space

A = sp.Symbol("A", commutative=False)  # a linear layer map: T(v) = A·v


def edge_sum(space: SearchSpace, states: list, step: int, t_map: Callable, coefficient) -> object:
    """Σ_edges c·(T or identity)(z_{step−lag}); z_{−l} = z_0 (the stages' restart rule)."""
    total = 0
    for kind in space.kinds:
        state = states[max(step - kind.lag, 0)]
        total = total + coefficient(kind, step) * (t_map(state) if kind.role == T_ROLE else state)
    return total


def unrolled_residuals(name: str, first: int, linear: bool, steps: int = 6) -> list[float]:
    """|z_{k+1} − the space's edge sum| for k = first … steps − 1, on the unrolled iterates.

    The unrolled z_k are sums of monomials (z₀, T(…) or A·…·z₀); the residual's largest
    coefficient is returned. With a linear T the coefficients are float64 (the exact radicals of
    κ-schedules grow too fast to expand); with T undefined they stay exact, so that T(1.0·z₀) and
    T(z₀) are one function value.
    """
    space = resolve_space(name)
    recurrence = recurrence_of(space.algorithm)
    exact = not linear
    table = ScheduleTable(recurrence.schedules, recurrence.coefficient_values(), exact=exact)
    values = recurrence.unroll(steps, exact=exact)[recurrence.input_stream]
    if linear:
        values = [sp.expand(v.replace(T, lambda arg: A * arg)) for v in values]

    def coefficient(kind, step):
        return table.evaluate(kind.coefficient, k=step)

    t_map = (lambda v: A * v) if linear else T
    residuals = []
    for step in range(first, steps):
        residual = sp.expand(values[step + 1] - edge_sum(space, values, step, t_map, coefficient))
        terms = residual.as_coefficients_dict().values()
        residuals.append(max([abs(float(c)) for c in terms] + [0.0]))
    return residuals


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("gd", 0),
        ("heavyball", 0),
        ("nesterov", 0),
        ("nesterov_sc", 0),
        ("triple_momentum", 0),
        ("heavyball_velocity", 0),
        ("qhm", 1),
    ],
)
def test_bounded_spaces_reproduce_the_unrolled_iterates_for_linear_t(name: str, first: int) -> None:
    """With T linear (T = A·) a T of a combination splits exactly, so every space must hold."""
    assert max(unrolled_residuals(name, first, linear=True)) < 1e-12


@pytest.mark.parametrize("name", ["gd", "heavyball", "heavyball_velocity", "qhm"])
def test_unsplit_spaces_hold_for_any_t(name: str) -> None:
    """No edge of these spaces is split off a T of a combination: they hold for T undefined."""
    space = resolve_space(name)
    assert not any(kind.split for kind in space.kinds)
    assert max(unrolled_residuals(name, 1, linear=False)) < 1e-12


def test_qhm_holds_from_block_one_not_at_the_stage_start() -> None:
    """m₀ = 0 starts QHM; the one-stream look-back reads z₋₁ = z₀ there instead, and differs."""
    (at_start,) = unrolled_residuals("qhm", 0, linear=False, steps=1)
    assert at_start > 0.1


def grad(x: np.ndarray) -> np.ndarray:
    """∇f of f(x) = Σ (log cosh(x) + x²/2)/2, a 1-Lipschitz gradient (the papers' scaling)."""
    return 0.5 * np.tanh(x) + 0.5 * x


def run_qhm(beta: float, nu: float, x0: np.ndarray, steps: int) -> list[np.ndarray]:
    """Ma & Yarats' QHM with step 1: m ← βm + (1 − β)g, x ← x − ((1 − ν)g + νm), m₀ = 0."""
    xs, m = [x0], np.zeros_like(x0)
    for _ in range(steps):
        g = grad(xs[-1])
        m = beta * m + (1 - beta) * g
        xs.append(xs[-1] - ((1 - nu) * g + nu * m))
    return xs


def run_velocity_heavy_ball(beta: float, x0: np.ndarray, steps: int) -> list[np.ndarray]:
    """Sutskever et al.'s form: v ← βv − ∇f(x), x ← x + v, v₀ = 0."""
    xs, v = [x0], np.zeros_like(x0)
    for _ in range(steps):
        v = beta * v - grad(xs[-1])
        xs.append(xs[-1] + v)
    return xs


def run_triple_momentum(
    kappa: float, gradient: Callable, x0: np.ndarray, steps: int
) -> list[np.ndarray]:
    """Van Scoy et al. with L = 1: ξ ← (1+β)ξ − βξ₋ − α∇f((1+γ)ξ − γξ₋), ξ₋₁ = ξ₀."""
    rho = 1 - 1 / np.sqrt(kappa)
    alpha, beta, gamma = 1 + rho, rho**2 / (2 - rho), rho**2 / ((1 + rho) * (2 - rho))
    xs, previous = [x0], x0
    for _ in range(steps):
        xi = xs[-1]
        y = (1 + gamma) * xi - gamma * previous
        xs.append((1 + beta) * xi - beta * previous - alpha * gradient(y))
        previous = xi
    return xs


def numeric_residuals(
    space: SearchSpace, xs: list[np.ndarray], first: int, gradient: Callable = grad
) -> list[float]:
    """max |x_{k+1} − edge sum| for k = first, …, with T(z) = z − ∇f(z) and the edges' values."""

    def value(kind, step):
        return kind.value

    def layer(z: np.ndarray) -> np.ndarray:
        return z - gradient(z)

    return [
        float(np.abs(xs[step + 1] - edge_sum(space, xs, step, layer, value)).max())
        for step in range(first, len(xs) - 1)
    ]


X0 = np.array([1.7, -0.4, 2.5])


@pytest.mark.parametrize(("beta", "nu"), [(0.9, 0.7), (0.5, 0.2), (0.99, 0.95)])
def test_qhm_space_is_the_optimizer_from_step_one(beta: float, nu: float) -> None:
    space = resolve_space("qhm", {"beta": beta, "nu": nu})
    assert [(k.lag, k.role) for k in space.kinds] == [
        (0, T_ROLE),
        (1, T_ROLE),
        (0, STATE_ROLE),
        (1, STATE_ROLE),
    ]
    xs = run_qhm(beta, nu, X0, 8)
    assert max(numeric_residuals(space, xs, 1)) < 1e-12
    assert numeric_residuals(space, xs, 0)[0] > 1e-3  # m₀ = 0 is not z's look-back


def test_velocity_heavy_ball_gives_the_heavy_ball_space() -> None:
    velocity, heavy_ball = resolve_space("heavyball_velocity"), resolve_space("heavyball")
    assert velocity.cell_edges() == heavy_ball.cell_edges()
    assert [(k.lag, k.role, k.value) for k in velocity.kinds] == [
        (k.lag, k.role, k.value) for k in heavy_ball.kinds
    ]
    xs = run_velocity_heavy_ball(0.3, X0, 8)
    assert max(numeric_residuals(velocity, xs, 0)) < 1e-12
    assert "zᵥ substituted" in "\n".join(velocity.describe())


def test_triple_momentum_space_is_the_optimizer_for_linear_gradients() -> None:
    """Its T-edges are split off T((1+γ)z_k − γz_{k−1}): exact when ∇f is linear."""
    space = resolve_space("triple_momentum")
    hessian = np.diag([0.2, 0.5, 0.9])

    def linear_grad(x: np.ndarray) -> np.ndarray:
        return hessian @ x

    xs = run_triple_momentum(10.0, linear_grad, X0, 8)
    assert max(numeric_residuals(space, xs, 0, linear_grad)) < 1e-12
    nonlinear = run_triple_momentum(10.0, grad, X0, 8)
    assert max(numeric_residuals(space, nonlinear, 0)) > 1e-4  # the split needs a linear T


def test_extragradient_and_a_vanishing_divisor_are_refused() -> None:
    with pytest.raises(UserError, match=r"2 streams \(zy, z\).*a T of a T"):
        resolve_space("extragradient")
    with pytest.raises(UserError, match="0 at these coefficients"):
        resolve_space("qhm", {"nu": 0.0})


DISCOUNTED = """
name = "discounted"
title = "Gradient descent with a discounted gradient history"
states = ["x"]
[update]
"x[k+1]" = "x[k] - sum(2**(j-k)*grad(x[j]), j, 0, k)"
"""


def test_a_history_spec_gets_an_edge_normalised_space(tmp_path: Path) -> None:
    """Its block input z_0 stays in the state sum (the dense conv form refuses it); a space
    relaxes the coefficients into p_it and needs only the shape."""
    spec = tmp_path / "discounted.toml"
    spec.write_text(DISCOUNTED, encoding="utf-8")
    space = resolve_space(str(spec))
    (kind,) = space.kinds
    assert kind.lag is None and kind.role == MERGED_ROLE and space.normalised
    assert space.num_edges == 14
    recurrence = recurrence_of(space.algorithm)
    z1 = recurrence.unroll(1)[recurrence.input_stream][1]
    z0 = vector(recurrence.input_stream)(0)
    assert sp.expand(z1 - T(z0)) == 0  # z_1 = z_0 − ∇f(z_0) = T(z_0): the space reads the sum
