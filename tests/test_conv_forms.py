"""The conv (engineering) forms are the algorithms they came from, and the zoo sets the papers' values.

With T = Φ(W·) (one fixed linear map and an activation, tied across blocks, rows are samples) and the
coefficients each generated conv module derives (`block_coefficients`), a stage must compute exactly
what the fc network computes, and the fc network is the optimizer (tests/test_fc_matches_optimizer.py):
- lagged (C1)/(C2) stages of gd, heavyball, nesterov, nesterov_sc, triple_momentum equal their fc
  network at every depth;
- the dense (C3) stage of nesterov2 equals its fc network at every depth;
- the (C5) block of admm reproduces ADMM's x-path step from the optimizer's own iterates
  (run here in x-space); the second path is (C5)'s relaxation and adds the same shared sum.
All in float64 to 1e-12. Then the zoo's overrides against SCIS appendix C, values typed from the paper.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from derive.codegen.loader import load_generated
from derive.models import create_model

N, BATCH, DEPTHS = 5, 3, range(1, 8)
LAGGED = {
    "gd": {},
    "heavyball": {"beta": 0.45},
    "nesterov": {},
    "nesterov_sc": {"kappa": 7.0},
    "triple_momentum": {"kappa": 4.0},
}


def _spd(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """W symmetric positive definite with eigenvalues in (0.2, 0.9), and U = √W."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(N, N)))
    eig = rng.uniform(0.2, 0.9, size=N)
    return torch.tensor((q * eig) @ q.T), torch.tensor((q * np.sqrt(eig)) @ q.T)


class Tied(nn.Module):
    """T(z) = scale · Φ(z Wᵀ) with a fixed W: the papers' layer before any relaxation."""

    def __init__(self, w: torch.Tensor, scale: float = 1.0) -> None:
        super().__init__()
        self.w, self.scale = w, scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.tanh(z @ self.w.T)


class DenseTied(nn.Module):
    """A dense unit with T = Φ(W·): Σⱼ αʲ·T(zⱼ) over the concatenated sources [z₀, …, z_k]."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, features: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        sources = features.split(N, dim=1)
        alphas = [1.0] * len(sources) if scale is None else scale[::N].tolist()
        return sum(a * torch.tanh(z @ self.w.T) for a, z in zip(alphas, sources, strict=True))


def _z0() -> torch.Tensor:
    return torch.tensor(np.random.default_rng(3).normal(size=(BATCH, N)))


@pytest.mark.parametrize("name", sorted(LAGGED))
def test_lagged_stage_is_the_fc_network(name):
    module = load_generated(f"{name}_conv")
    assert module.FORM == "lagged"
    fc = load_generated(f"{name}_fc")
    w, _ = _spd(len(name))
    coefficients = LAGGED[name]
    z0 = _z0()
    for depth in DEPTHS:
        blocks = [
            module.Block(Tied(w), module.block_coefficients(k, **coefficients))
            for k in range(depth)
        ]
        if hasattr(module, "output_weights"):
            stage = module.Stage(blocks, None, module.output_weights(**coefficients))
        else:
            stage = module.Stage(blocks)
        expected = fc.build_tied(w, "tanh", depth, **coefficients)(z0)
        torch.testing.assert_close(stage(z0), expected, rtol=1e-12, atol=1e-12)


def test_lagged_comparison_catches_a_flipped_sign():
    """The check above can fail: heavy ball's (C1) with β₂ = +β instead of −β is another network."""
    module, fc = load_generated("heavyball_conv"), load_generated("heavyball_fc")
    w, _ = _spd(9)
    z0 = _z0()
    blocks = []
    for k in range(4):
        c = module.block_coefficients(k, beta=0.45)
        blocks.append(module.Block(Tied(w), {**c, "beta2": -c["beta2"]}))
    assert not torch.allclose(
        module.Stage(blocks)(z0), fc.build_tied(w, "tanh", 4, beta=0.45)(z0), atol=1e-3
    )


def _dense_stage(module: object, w: torch.Tensor, depth: int) -> nn.Module:
    coefficients = [module.block_coefficients(k) for k in range(depth)]
    stage = module.Stage([DenseTied(w) for _ in range(depth)], N, N, coefficients, {}, beta=1.0)
    for k, values in enumerate(coefficients):  # the stage keeps float32 buffers for training
        for key, buffer in (("alpha", f"alpha{k}"), ("state", f"state{k}")):
            exact = torch.tensor(values[key], dtype=torch.float64)
            if getattr(stage, buffer) is not None:
                setattr(stage, buffer, exact if key == "alpha" else exact[1:])
    return stage


def test_dense_stage_is_the_fc_network():
    module, fc = load_generated("nesterov2_conv"), load_generated("nesterov2_fc")
    assert module.FORM == "dense"
    w, _ = _spd(4)
    z0 = _z0()
    for depth in DEPTHS:
        out = _dense_stage(module, w, depth)(z0)
        assert out.shape == (BATCH, N * (depth + 1))
        expected = fc.build_tied(w, "tanh", depth)(z0)
        torch.testing.assert_close(out[:, -N:], expected, rtol=1e-12, atol=1e-12)


def test_dense_comparison_catches_a_wrong_history_weight():
    module, fc = load_generated("nesterov2_conv"), load_generated("nesterov2_fc")
    w, _ = _spd(4)
    z0 = _z0()
    stage = _dense_stage(module, w, 4)
    stage.state3 = stage.state3 * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert not torch.allclose(stage(z0)[:, -N:], fc.build_tied(w, "tanh", 4)(z0), atol=1e-4)


def _admm_iterates(w: torch.Tensor, u: torch.Tensor, z0: torch.Tensor, steps: int):
    """Linearized ADMM (SCIS (6), penalty 1) in x-space, each argmin solved by hand; returns the
    z-space images z′ₜ = U⁻¹xₜ and zₜ = U⁻¹yₜ, t = 0 … steps (rows are samples, U symmetric)."""

    def grad(v: torch.Tensor) -> torch.Tensor:
        return v - torch.tanh(v @ u) @ u

    x = y = z0 @ u
    lam = torch.zeros_like(x)
    xs, ys = [x], [y]
    for _ in range(steps):
        x_new = (x + y - grad(x) - lam) / 2
        y_new = (y + x_new - grad(y) + lam) / 2
        lam = lam + x_new - y_new
        x, y = x_new, y_new
        xs.append(x)
        ys.append(y)
    inverse = torch.linalg.inv(u)
    return [v @ inverse for v in xs], [v @ inverse for v in ys]


def _c5_step(module, block, primes, zs, stage_input=None):
    """Block k of admm's (C5) stage from the iterates z′₀ … z′ₖ and z₀ … zₖ: (z′ₖ₊₁, zₖ₊₁)."""
    states = {"zp": primes[::-1], "z": zs[::-1]}  # states[s][l] is s at k − l
    new, _ = block(states, {}, stage_input)
    return new["zp"], new["z"]


def test_c5_block_takes_admms_x_step():
    module = load_generated("admm_conv")
    assert module.BRANCHES == {"branch_prime": (True, 0), "branch": (True, 0)}
    w, u = _spd(6)
    z0 = _z0()
    steps = 7
    primes, zs = _admm_iterates(w, u, z0, steps)
    for k in range(steps):
        block = module.Block([Tied(w, 0.5), Tied(w, 0.5)], module.block_coefficients(k))
        stage_input = z0 if k == 0 else None
        out_prime, out = _c5_step(module, block, primes[: k + 1], zs[: k + 1], stage_input)
        torch.testing.assert_close(out_prime, primes[k + 1], rtol=1e-12, atol=1e-12)
        # (C5): the second path adds the same shared sum to its own T(z_k)
        shared = out_prime - 0.5 * torch.tanh(primes[k] @ w.T)
        torch.testing.assert_close(out, 0.5 * torch.tanh(zs[k] @ w.T) + shared, rtol=0, atol=1e-12)


def test_c5_comparison_catches_a_wrong_weight():
    module = load_generated("admm_conv")
    w, u = _spd(6)
    z0 = _z0()
    primes, zs = _admm_iterates(w, u, z0, 3)
    c = module.block_coefficients(2)
    wrong = {"alpha": [-a for a in c["alpha"]], "beta": c["beta"]}
    block = module.Block([Tied(w, 0.5), Tied(w, 0.5)], wrong)
    out_prime, _ = _c5_step(module, block, primes[:3], zs[:3])
    assert not torch.allclose(out_prime, primes[3], atol=1e-3)


# ---------------------------------------------------------------------- the zoo: SCIS appendix C


def _blocks(model: nn.Module) -> list[nn.Module]:
    return [b for stage in model.stages if hasattr(stage, "blocks") for b in stage.blocks]


def _dense_stages(model: nn.Module) -> list[nn.Module]:
    return [s for s in model.stages if hasattr(s, "units")]


@pytest.mark.parametrize("name", ["hbnet20", "hbnet56", "hbnet34", "hbnet50"])
def test_hbnet_is_c1_with_beta1_one_and_beta2_minus_one(name):
    """SCIS C.1: "directly setting β1 = 1 and β2 = −1 in (C1)": z_{k+1} = T(z_k) + z_k − z_{k−1}."""
    with torch.device("meta"):  # the coefficients are Python floats: no weights needed
        blocks = _blocks(create_model(name))
    assert blocks and all((b.beta1, b.beta2) == (1.0, -1.0) for b in blocks)


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "resnet34", "resnet50"])
def test_resnet_is_c1_with_beta1_one_and_beta2_zero(name):
    """SCIS appendix C: "recover the ResNet architecture from (C1) by setting β2 = 0 and β1 = 1";
    a coefficient of 0 drops its path (pruned: None)."""
    with torch.device("meta"):
        blocks = _blocks(create_model(name))
    assert blocks and all(b.beta1 == 1.0 and b.beta2 is None for b in blocks)


def test_dmrnet_is_c5_with_halves_on_the_last_iterates():
    """DMRNet as SCIS appendix C prints it: z′_{k+1} = T(z′_k) + z′_k/2 + z_k/2 (and likewise z)."""
    with torch.device("meta"):
        model = create_model("dmrnet56")
    assert len(_blocks(model)) == 27
    for stage in model.stages:
        for k, block in enumerate(stage.blocks):
            assert block.alpha.fixed == [(k, 0.5)] and block.beta.fixed == [(k, 0.5)]


@pytest.mark.parametrize("name", ["densenet40", "densenet121"])
def test_densenet_is_c3_with_alpha_one_and_beta_zero(name):
    """Table C1: DenseNet is "β = 0, α = 1 in (C3)"."""
    stages = _dense_stages(create_model(name))
    assert stages
    for stage in stages:
        assert stage.beta is None and stage.alpha is None  # β pruned, α fixed
        for k in range(len(stage.units)):
            alpha = getattr(stage, f"alpha{k}")
            assert alpha is None or torch.all(alpha == 1)  # None: all ones, skipped


def _h_from_scis_5(n: int) -> list[list[float]]:
    """h_{k+1,j} by SCIS (5), θ from (1 − θ_k)/θ_k² = 1/θ²_{k−1}, θ_0 = 1 (SCIS (3))."""
    theta = [1.0]
    for _ in range(n + 1):
        a = theta[-1] ** 2
        theta.append((-a + math.sqrt(a * a + 4 * a)) / 2)
    h: list[list[float]] = [[]]
    for k in range(n):
        c = theta[k + 1] * (1 - theta[k]) / theta[k]
        row = [c * h[k][j] for j in range(k - 1)]
        if k >= 1:
            row.append(c * (h[k][k - 1] - 1))
        row.append(1 + c)
        h.append(row)
    return h


@pytest.mark.parametrize("name", ["agdnet40", "agdnet121"])
def test_agdnet_is_c6_with_learnable_alpha_beta_point_one_and_h_from_5(name):
    """SCIS C.2, (C6): z_{k+1} = Σⱼ αʲT(zⱼ) + β(z_k − Σⱼ h_{k+1}ʲ zⱼ), α learned, h by (5), β = 0.1."""
    stages = _dense_stages(create_model(name))
    h = _h_from_scis_5(33)
    for stage in stages:
        assert stage.beta == 0.1
        assert stage.alpha is not None and all(p.requires_grad for p in stage.alpha)
        for k in range(len(stage.units)):
            assert torch.all(stage.alpha[k] == 1)  # initialised at DenseNet's α = 1
            want = [(1.0 if j == k else 0.0) - h[k + 1][j] for j in range(1, k + 1)]
            np.testing.assert_allclose(getattr(stage, f"state{k}").double(), want, atol=1e-6)
        assert abs(h[len(stage.units)][0]) < 1e-12  # z₀ never enters the state sum
