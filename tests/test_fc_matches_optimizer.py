"""The fc form: the tied fc network of ALGO equals ALGO run directly in x-space (float64, ≤ 1e-9).

The reference optimizers are written here from the papers' x-space equations with numpy; they
share nothing with the derivation or the templates. x_k = U z_k, U = √W, ∇f(x) = x − UΦ(Ux).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from derive.codegen.loader import load_generated

ACTIVATIONS = {
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "tanh": np.tanh,
    "softplus": lambda v: np.log1p(np.exp(v)),
    "swish": lambda v: v / (1 + np.exp(-v)),
    "elu": lambda v: np.where(v > 0, v, np.expm1(np.minimum(v, 0))),
}


def spd_and_sqrt(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = rng.uniform(0.2, 0.9, size=n)
    return (q * eig) @ q.T, (q * np.sqrt(eig)) @ q.T


def theta_sequence(n: int) -> list[float]:
    theta = [1.0]
    for _ in range(n):
        a = theta[-1] ** 2  # θ² + aθ − a = 0 from (1 − θ)/θ² = 1/θ_prev²
        theta.append((-a + math.sqrt(a * a + 4 * a)) / 2)
    return theta


def reference(algo: str, x0: np.ndarray, u: np.ndarray, phi, depth: int, **c: float) -> np.ndarray:
    """Rows are samples: ∇f(X) = X − Φ(X U) U (U symmetric)."""

    def grad(x: np.ndarray) -> np.ndarray:
        return x - phi(x @ u) @ u

    if algo == "gd":
        x = x0
        for _ in range(depth):
            x = x - grad(x)
        return x
    if algo == "heavyball":
        beta = c.get("beta", 0.3)
        prev, x = x0, x0
        for _ in range(depth):
            prev, x = x, x - grad(x) + beta * (x - prev)
        return x
    if algo in ("nesterov", "nesterov2"):
        theta = theta_sequence(depth + 2)
        prev, x = x0, x0
        y = x0
        for kk in range(depth):
            beta_k = 0.0 if kk == 0 else theta[kk] * (1 - theta[kk - 1]) / theta[kk - 1]
            y = x + beta_k * (x - prev)
            prev, x = x, y - grad(y)
        if algo == "nesterov":
            return x
        beta_d = theta[depth] * (1 - theta[depth - 1]) / theta[depth - 1]
        return x + beta_d * (x - prev)  # y_depth of (3), which (4)-(5) must reproduce
    if algo == "admm":
        x, y, lam = x0, x0, np.zeros_like(x0)
        for _ in range(depth):
            # argmin_x <∇f(x_k), x> + ||x − x_k||²/2 + <λ, x> + ||x − y_k||²/2, solved by hand:
            x_new = (x + y - grad(x) - lam) / 2
            y_new = (y + x_new - grad(y) + lam) / 2
            lam = lam + x_new - y_new
            x, y = x_new, y_new
        return y
    if algo == "nesterov_sc":
        kappa = c.get("kappa", 10.0)
        beta = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
        prev, x = x0, x0
        for _ in range(depth):
            y = x + beta * (x - prev)
            prev, x = x, y - grad(y)
        return x
    if algo == "triple_momentum":  # Van Scoy, Freeman, Lynch (2018), L = 1
        kappa = c.get("kappa", 10.0)
        rho = 1 - 1 / math.sqrt(kappa)
        alpha, beta = 1 + rho, rho**2 / (2 - rho)
        gamma, delta = rho**2 / ((1 + rho) * (2 - rho)), rho**2 / (1 - rho**2)
        prev, xi = x0, x0
        for _ in range(depth):
            y = (1 + gamma) * xi - gamma * prev
            prev, xi = xi, (1 + beta) * xi - beta * prev - alpha * grad(y)
        return (1 + delta) * xi - delta * prev
    if algo == "qhm":  # Ma & Yarats (2019), unit step: m ← βm + (1 − β)g, x ← x − ((1 − ν)g + νm)
        beta, nu = c.get("beta", 0.9), c.get("nu", 0.7)
        x, m = x0, np.zeros_like(x0)
        for _ in range(depth):
            g = grad(x)
            m = beta * m + (1 - beta) * g
            x = x - ((1 - nu) * g + nu * m)
        return x
    if algo == "extragradient":  # Korpelevich (1976): step to y, then step from x with ∇f(y)
        x = x0
        for _ in range(depth):
            y = x - grad(x)
            x = x - grad(y)
        return x
    if algo == "heavyball_velocity":  # v ← βv − ∇f(x), x ← x + v, v₀ = 0
        beta = c.get("beta", 0.3)
        x, v = x0, np.zeros_like(x0)
        for _ in range(depth):
            v = beta * v - grad(x)
            x = x + v
        return x
    raise AssertionError(algo)


CASES = [
    ("gd", {}),
    ("heavyball", {}),
    ("heavyball", {"beta": 0.7}),
    ("nesterov", {}),
    ("nesterov2", {}),
    ("admm", {}),
    ("nesterov_sc", {"kappa": 5.0}),
    ("triple_momentum", {}),
    ("triple_momentum", {"kappa": 3.0}),
    ("qhm", {}),
    ("qhm", {"beta": 0.5, "nu": 0.3}),
    ("extragradient", {}),
    ("heavyball_velocity", {}),
    ("heavyball_velocity", {"beta": 0.7}),
]


@pytest.mark.parametrize("algo,coefficients", CASES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_tied_network_equals_optimizer(algo: str, coefficients: dict, activation: str) -> None:
    n, batch, depth = 6, 4, 9
    w, u = spd_and_sqrt(n, seed=len(algo) + len(activation))
    rng = np.random.default_rng(7)
    z0 = rng.normal(size=(batch, n))
    module = load_generated(f"{algo}_fc")
    net = module.build_tied(torch.tensor(w), activation, depth, **coefficients)
    z = net(torch.tensor(z0)).numpy()
    x = reference(algo, z0 @ u, u, ACTIVATIONS[activation], depth, **coefficients)
    expected = np.linalg.solve(u, x.T).T  # z = U⁻¹x
    assert net(torch.tensor(z0)).dtype == torch.float64
    np.testing.assert_allclose(z, expected, rtol=1e-9, atol=1e-9)


def test_comparison_detects_a_wrong_coefficient() -> None:
    """The check above can fail: heavy ball with β = 0.31 is not heavy ball with β = 0.3."""
    w, u = spd_and_sqrt(5, seed=1)
    z0 = np.random.default_rng(0).normal(size=(3, 5))
    net = load_generated("heavyball_fc").build_tied(torch.tensor(w), "tanh", 6, beta=0.31)
    x = reference("heavyball", z0 @ u, u, np.tanh, 6, beta=0.3)
    assert not np.allclose(net(torch.tensor(z0)).numpy(), np.linalg.solve(u, x.T).T, atol=1e-6)


def test_dtype_follows_the_weight_and_callables_work() -> None:
    w, _ = spd_and_sqrt(4, seed=2)
    net = load_generated("nesterov_fc").build_tied(
        torch.tensor(w, dtype=torch.float32), torch.sigmoid, 3
    )
    out = net(torch.randn(2, 4, dtype=torch.float64))
    assert out.dtype == torch.float32 and out.shape == (2, 4)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_depth_is_rejected(bad: object) -> None:
    w, _ = spd_and_sqrt(3, seed=3)
    with pytest.raises(ValueError):
        load_generated("gd_fc").build_tied(torch.tensor(w), "tanh", bad)


def test_bad_coefficients_are_rejected() -> None:
    w, _ = spd_and_sqrt(3, seed=3)
    module = load_generated("heavyball_fc")
    with pytest.raises(TypeError):
        module.build_tied(torch.tensor(w), "tanh", 3, beta="0.5")
    with pytest.raises(TypeError):
        module.build_tied(torch.tensor(w), "tanh", 3, gamma=0.5)
    with pytest.raises(ValueError):
        module.build_tied(torch.tensor(w), "no_such_activation", 3)


def test_untied_network_has_a_weight_per_layer_and_trains() -> None:
    module = load_generated("nesterov2_fc")
    net = module.build_untied(8, "sigmoid", 5)
    assert sum(p.numel() for p in net.parameters()) == 5 * 64
    x, target = torch.randn(32, 8), torch.randn(32, 8)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = torch.nn.functional.mse_loss(net(x), target).item()
    for _ in range(30):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), target)
        loss.backward()
        optimizer.step()
    assert loss.item() < first


@pytest.mark.parametrize("algo", ["nesterov_sc", "triple_momentum"])
def test_accelerated_methods_converge_at_their_published_rate(algo: str) -> None:
    """On f(x) = ½xᵀ(I − W)x (Φ = identity) the error shrinks like (1 − 1/√κ)^k, not (1 − 1/κ)^k."""
    n = 6
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = np.linspace(0.0, 0.96, n)  # Hessian I − W has μ = 0.04, L = 1: κ = 25
    w = (q * eig) @ q.T
    kappa = 1.0 / (1.0 - eig.max())
    module = load_generated(f"{algo}_fc")
    z0 = torch.tensor(rng.normal(size=(1, n)))
    errors = []
    for depth in (20, 40):
        net = module.build_tied(torch.tensor(w), lambda v: v, depth, kappa=kappa)
        errors.append(net(z0).norm().item())  # the minimizer is 0
    measured = (errors[1] / errors[0]) ** (1 / 20)
    assert measured <= (1 - 1 / math.sqrt(kappa)) * 1.05
    assert measured < 1 - 1 / kappa  # faster than gradient descent's rate
