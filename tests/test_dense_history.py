"""AGDNet's state sum carried from layer to layer: Sₖ = rₖ·Sₖ₋₁ + sₖ₊₁ᵏ·zₖ equals Σⱼ sₖ₊₁ʲ·zⱼ.

The dense stage forms β·Σⱼ sₖ₊₁ʲ·zⱼ, sₖ₊₁ʲ = [j = k] − h_{k+1,j}, with one update per layer when
the coefficients have the product structure of AGD's h (SCIS (5)). Here the sum is formed directly
over the whole history in float64, with h computed in this file from θ of SCIS (3), and the stage
must give the same features at every depth; coefficients without that structure take the direct
path, and the stage still matches.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from zoo_meta import meta_model

from derive.codegen.loader import load_generated

IN, GROWTH, DEPTH, BETA = 5, 3, 40, 0.1


def theta_table(n: int) -> list[float]:
    """θ₀ = 1, (1 − θₖ)/θₖ² = 1/θₖ₋₁² (SCIS (3)), solved in closed form."""
    theta = [1.0]
    for _ in range(n):
        a = theta[-1] ** 2
        theta.append((-a + math.sqrt(a * a + 4 * a)) / 2)
    return theta


def h_table(n: int) -> list[list[float]]:
    """h[k][j] = h_{k,j} of SCIS (5), k = 1 … n, by its recursion in θ."""
    theta = theta_table(n + 1)
    h: list[list[float]] = [[], [1.0 + theta[1] * (1 - theta[0]) / theta[0]]]
    for k in range(1, n):
        c = theta[k + 1] * (1 - theta[k]) / theta[k]
        h.append([c * h[k][j] for j in range(k - 1)] + [c * (h[k][k - 1] - 1), 1 + c])
    return h


class LinearUnit(nn.Module):
    """A stand-in for Tₖ: tanh of a fixed random 1×1 map of the α-scaled sources."""

    def __init__(self, in_channels: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(GROWTH, in_channels, generator=generator, dtype=torch.float64)
        self.register_buffer("weight", weight / math.sqrt(in_channels))

    def forward(self, features: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        x = features if scale is None else features * scale.view(1, -1, 1, 1)
        return torch.tanh(torch.einsum("bchw,oc->bohw", x, self.weight))


def units(depth: int) -> list[LinearUnit]:
    return [LinearUnit(IN + k * GROWTH, seed=k) for k in range(depth)]


def exact_stage(module, coefficients: list[dict], depth: int) -> nn.Module:
    """The stage in float64, its coefficient buffers holding the float64 values it was given."""
    stage = module.Stage(units(depth), IN, GROWTH, coefficients, {}, beta=BETA).double()
    for k, values in enumerate(coefficients):
        setattr(stage, f"state{k}", torch.tensor(values["state"][1:], dtype=torch.float64))
        if getattr(stage, f"alpha{k}") is not None:
            setattr(stage, f"alpha{k}", torch.tensor(values["alpha"], dtype=torch.float64))
    return stage


def direct(z0: torch.Tensor, depth: int, state: list[list[float]], alpha: list[list[float]]):
    """z₁ … z_depth with the state sum formed over the whole history (no carried sum)."""
    features = [z0]
    for k, unit in enumerate(units(depth)):
        channels = [IN] + [GROWTH] * k
        scale = torch.repeat_interleave(
            torch.tensor(alpha[k], dtype=torch.float64), torch.tensor(channels)
        )
        z = unit(torch.cat(features, 1), scale)
        z = z + BETA * sum(state[k][j] * features[j] for j in range(1, k + 1))
        features.append(z)
    return features[1:]


def _z0() -> torch.Tensor:
    return torch.randn(2, IN, 3, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)


def test_the_carried_state_sum_is_the_direct_sum_at_every_depth() -> None:
    module = load_generated("nesterov2_conv")
    h = h_table(DEPTH + 1)
    state = [[(1.0 if j == k else 0.0) - h[k + 1][j] for j in range(k + 1)] for k in range(DEPTH)]
    coefficients = [module.block_coefficients(k) for k in range(DEPTH)]
    stage = exact_stage(module, coefficients, DEPTH)
    assert stage.history_decay is not None  # the carried sum is in use
    theta = theta_table(DEPTH + 2)
    for k in range(2, DEPTH):  # rₖ is β_{k+1} of SCIS (11)
        assert stage.history_decay[k] == pytest.approx(
            theta[k + 1] * (1 - theta[k]) / theta[k], rel=1e-12
        )
    z0 = _z0()
    out = stage(z0)
    want = direct(z0, DEPTH, state, [c["alpha"] for c in coefficients])
    for k, z in enumerate(want):
        got = out[:, IN + k * GROWTH : IN + (k + 1) * GROWTH]
        torch.testing.assert_close(got, z, rtol=1e-12, atol=1e-13, msg=f"z_{k + 1}")


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_the_first_layers_need_no_earlier_sum(depth: int) -> None:
    """k = 0 has no state sum, k = 1 starts it from z₁ alone."""
    module = load_generated("nesterov2_conv")
    coefficients = [module.block_coefficients(k) for k in range(depth)]
    stage = exact_stage(module, coefficients, depth)
    z0 = _z0()
    want = direct(
        z0,
        depth,
        [c["state"] for c in coefficients],
        [c["alpha"] for c in coefficients],
    )
    torch.testing.assert_close(stage(z0)[:, IN:], torch.cat(want, 1), rtol=1e-12, atol=1e-13)


def test_coefficients_without_the_product_structure_are_summed_directly() -> None:
    """Random state weights have no rₖ: the stage sums over the history and still matches."""
    module = load_generated("nesterov2_conv")
    generator = torch.Generator().manual_seed(4)
    depth = 6
    state = [[0.0] + torch.randn(k, generator=generator).tolist() for k in range(depth)]
    alpha = [[1.0] * (k + 1) for k in range(depth)]
    coefficients = [{"alpha": a, "state": s} for a, s in zip(alpha, state, strict=True)]
    assert module.history_decay(state) is None
    stage = exact_stage(module, coefficients, depth)
    z0 = _z0()
    torch.testing.assert_close(
        stage(z0)[:, IN:],
        torch.cat(direct(z0, depth, state, alpha), 1),
        rtol=1e-12,
        atol=1e-13,
    )


def test_a_wrong_decay_is_caught() -> None:
    """The comparison can fail: a carried sum with one rₖ off by 1 % gives other features."""
    module = load_generated("nesterov2_conv")
    coefficients = [module.block_coefficients(k) for k in range(8)]
    stage = exact_stage(module, coefficients, 8)
    stage.history_decay[5] *= 1.01
    z0 = _z0()
    h = h_table(9)
    state = [[(1.0 if j == k else 0.0) - h[k + 1][j] for j in range(k + 1)] for k in range(8)]
    want = torch.cat(direct(z0, 8, state, [c["alpha"] for c in coefficients]), 1)
    assert not torch.allclose(stage(z0)[:, IN:], want, rtol=1e-9, atol=1e-12)


def test_agdnet40_carries_its_state_sums() -> None:
    """The zoo's AGDNet-40 and AGDNet-121 use the carried sum in every dense stage."""
    for name in ("agdnet40", "agdnet121"):
        model = meta_model(name)
        stages = [m for m in model.modules() if hasattr(m, "history_decay")]
        assert len(stages) in (3, 4)
        assert all(s.history_decay is not None for s in stages)
