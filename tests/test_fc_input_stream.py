"""The injected input: a tied fc network with the teacher's weights IS d iterations of ALGO on
F(x) = ‖x‖²/2 − Σᵢ Ψ(Uᵢᵀx) − ⟨b, x⟩, b = Uu.

The optimizers are written here in x-space with numpy, from the papers' equations with ∇F in
place of ∇f; the minimiser x* is found by Newton's method on F (float64, gradient norm < 1e-13).
Nothing here comes from the derivation or the templates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from derive.codegen.generate import generate
from derive.codegen.loader import load_generated
from derive.models.registry import load_python_file

Grad = Callable[[np.ndarray], np.ndarray]


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def teacher(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """W = U² symmetric with spectrum in [0.2, 3.2] (so F is strongly convex for Φ = sigmoid)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = rng.uniform(0.2, 3.2, size=n)
    return (q * eig) @ q.T, (q * np.sqrt(eig)) @ q.T


def minimiser(u_mat: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin F by Newton's method, rows independent; checked: ‖∇F(x*)‖ < 1e-13."""
    x = np.zeros_like(b)
    for _ in range(60):
        s = sigmoid(x @ u_mat)
        grad = x - s @ u_mat - b
        for row in range(x.shape[0]):
            hessian = np.eye(len(u_mat)) - u_mat @ np.diag(s[row] * (1 - s[row])) @ u_mat
            x[row] -= np.linalg.solve(hessian, grad[row])
    assert np.abs(x - sigmoid(x @ u_mat) @ u_mat - b).max() < 1e-13
    return x


def theta_sequence(n: int) -> list[float]:
    theta = [1.0]
    for _ in range(n):
        a = theta[-1] ** 2  # θ² + aθ − a = 0 from (1 − θ)/θ² = 1/θ_prev²
        theta.append((-a + math.sqrt(a * a + 4 * a)) / 2)
    return theta


def momentum_methods(algo: str, x0: np.ndarray, grad: Grad, depth: int) -> np.ndarray | None:
    """Heavy ball, Nesterov (3) and its y-form (4)-(5), Nesterov-SC (κ = 5), triple momentum."""
    if algo == "heavyball":
        prev, x = x0, x0
        for _ in range(depth):
            prev, x = x, x - grad(x) + 0.3 * (x - prev)
        return x
    if algo in ("nesterov", "nesterov2"):
        theta = theta_sequence(depth + 2)
        prev, x = x0, x0
        for kk in range(depth):
            beta_k = 0.0 if kk == 0 else theta[kk] * (1 - theta[kk - 1]) / theta[kk - 1]
            y = x + beta_k * (x - prev)
            prev, x = x, y - grad(y)
        if algo == "nesterov":
            return x
        beta_d = theta[depth] * (1 - theta[depth - 1]) / theta[depth - 1]
        return x + beta_d * (x - prev)
    if algo == "nesterov_sc":
        beta = (math.sqrt(5.0) - 1) / (math.sqrt(5.0) + 1)
        prev, x = x0, x0
        for _ in range(depth):
            y = x + beta * (x - prev)
            prev, x = x, y - grad(y)
        return x
    if algo == "triple_momentum":  # Van Scoy, Freeman, Lynch (2018), L = 1, κ = 10
        rho = 1 - 1 / math.sqrt(10.0)
        alpha, beta = 1 + rho, rho**2 / (2 - rho)
        gamma, delta = rho**2 / ((1 + rho) * (2 - rho)), rho**2 / (1 - rho**2)
        prev, xi = x0, x0
        for _ in range(depth):
            y = (1 + gamma) * xi - gamma * prev
            prev, xi = xi, (1 + beta) * xi - beta * prev - alpha * grad(y)
        return (1 + delta) * xi - delta * prev
    return None


def other_methods(algo: str, x0: np.ndarray, grad: Grad, depth: int) -> np.ndarray:
    """Gradient descent, linearised ADMM (6), QHM, extragradient, heavy ball with velocity."""
    x, y, aux = x0, x0, np.zeros_like(x0)
    for _ in range(depth):
        if algo == "gd":
            x = x - grad(x)
        elif algo == "admm":  # the argmin steps of (6), solved by hand; aux is λ
            x_new = (x + y - grad(x) - aux) / 2
            y = (y + x_new - grad(y) + aux) / 2
            aux, x = aux + x_new - y, x_new
        elif algo == "qhm":  # aux is m: m ← 0.9m + 0.1g, x ← x − (0.3g + 0.7m)
            g = grad(x)
            aux = 0.9 * aux + 0.1 * g
            x = x - (0.3 * g + 0.7 * aux)
        elif algo == "extragradient":
            x = x - grad(x - grad(x))
        elif algo == "heavyball_velocity":  # aux is v: v ← 0.3v − ∇F(x), x ← x + v
            aux = 0.3 * aux - grad(x)
            x = x + aux
        else:
            raise AssertionError(algo)
    return y if algo == "admm" else x


def run_optimizer(algo: str, x0: np.ndarray, grad: Grad, depth: int) -> np.ndarray:
    out = momentum_methods(algo, x0, grad, depth)
    return out if out is not None else other_methods(algo, x0, grad, depth)


ALGORITHMS = [
    "gd",
    "heavyball",
    "nesterov",
    "nesterov2",
    "admm",
    "nesterov_sc",
    "triple_momentum",
    "qhm",
    "extragradient",
    "heavyball_velocity",
]
COEFFICIENTS = {"nesterov_sc": {"kappa": 5.0}}


def check_network_is_the_optimizer(module, algo: str, depth: int, seed: int) -> None:
    """Output error of the tied network = the optimizer's error after `depth` iterations."""
    n = 5
    w, u_mat = teacher(n, seed)
    rng = np.random.default_rng(seed + 100)
    z0, u = rng.normal(size=(3, n)), rng.normal(size=(3, n))
    b = u @ u_mat  # b = U u, rows are samples
    x_star = minimiser(u_mat, b)

    def grad(x: np.ndarray) -> np.ndarray:
        return x - sigmoid(x @ u_mat) @ u_mat - b

    x_d = run_optimizer(algo, z0 @ u_mat, grad, depth)
    net = module.build_tied(torch.tensor(w), "sigmoid", depth, **COEFFICIENTS.get(algo, {}))
    z_d = net(torch.tensor(z0), torch.tensor(u)).numpy()
    network_error = np.linalg.norm(z_d @ u_mat - x_star, axis=1)
    optimizer_error = np.linalg.norm(x_d - x_star, axis=1)
    assert optimizer_error.max() > 1e-8  # not yet converged: the comparison has something to see
    np.testing.assert_allclose(network_error, optimizer_error, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(z_d, np.linalg.solve(u_mat, x_d.T).T, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("depth", [1, 2, 5, 13])
@pytest.mark.parametrize("algo", ALGORITHMS)
def test_tied_network_with_input_is_the_optimizer(algo: str, depth: int) -> None:
    check_network_is_the_optimizer(load_generated(f"{algo}_fc"), algo, depth, seed=depth)


def test_the_input_matters_and_a_wrong_input_is_seen() -> None:
    """Without u the network solves b = 0, and its error against x*(b) is not the optimizer's."""
    w, u_mat = teacher(4, 3)
    rng = np.random.default_rng(1)
    z0, u = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    net = load_generated("heavyball_fc").build_tied(torch.tensor(w), "sigmoid", 6)
    with_input = net(torch.tensor(z0), torch.tensor(u)).numpy()
    without = net(torch.tensor(z0)).numpy()
    assert np.abs(with_input - without).max() > 1e-2
    x_d = run_optimizer("heavyball", z0 @ u_mat, lambda x: x - sigmoid(x @ u_mat) @ u_mat, 6)
    np.testing.assert_allclose(without, np.linalg.solve(u_mat, x_d.T).T, atol=1e-11)


SPEC = """
name = "damped_nesterov"
title = "Nesterov with a damped extrapolation"
states = ["x"]
[coefficients]
beta = 0.4
[let]
"y[k]" = "x[k] + beta*(x[k] - x[k-1])"
[update]
"x[k+1]" = "y[k] - grad(y[k]) + beta*(x[k-1] - x[k-2])/4"
[initial]
"x[-1]" = "x[0]"
"x[-2]" = "x[0]"
"""


@pytest.mark.parametrize("depth", [1, 4, 11])
def test_user_spec_network_with_input_is_its_iteration(tmp_path: Path, depth: int) -> None:
    spec = tmp_path / "damped_nesterov.toml"
    spec.write_text(SPEC, encoding="utf-8")
    module_path = tmp_path / "damped_nesterov_fc.py"
    module_path.write_text(generate(str(spec), "fc").source, encoding="utf-8")
    module = load_python_file(str(module_path))
    w, u_mat = teacher(5, depth)
    rng = np.random.default_rng(depth)
    z0, u = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    b = u @ u_mat
    x_star = minimiser(u_mat, b)
    xs = [z0 @ u_mat] * 3  # x_{-2} = x_{-1} = x_0
    for _ in range(depth):
        x, x1, x2 = xs[-1], xs[-2], xs[-3]
        y = x + 0.4 * (x - x1)
        xs.append(y - (y - sigmoid(y @ u_mat) @ u_mat - b) + 0.4 * (x1 - x2) / 4)
    z_d = module.build_tied(torch.tensor(w), "sigmoid", depth)(torch.tensor(z0), torch.tensor(u))
    network_error = np.linalg.norm(z_d.numpy() @ u_mat - x_star, axis=1)
    np.testing.assert_allclose(
        network_error, np.linalg.norm(xs[-1] - x_star, axis=1), rtol=1e-9, atol=1e-12
    )
