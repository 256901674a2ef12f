"""ADMM's conv network (SCIS (C5)) as the multi-stream form prints it.

The zoo's dmrnet56 and admmnet56 are (C5): two paths, each with its own T, both adding the first
(z′) path's sums over the whole history,

    z′ₖ₊₁ = ρ(T′ₖ(z′ₖ) + Σₜ αₖ₊₁ᵗ·z′ₜ + Σₜ βₖ₊₁ᵗ·zₜ)
    zₖ₊₁  = ρ(Tₖ(zₖ)   + Σₜ αₖ₊₁ᵗ·z′ₜ + Σₜ βₖ₊₁ᵗ·zₜ),

z′₀ = z₀ = S(stage input), the first block's T′ and T reading the stage input, the stage returning
(z′_K + z_K)/2. `c5_stage_by_hand` computes that in plain torch from a built stage's T modules and
weights written out here ((13)'s first path for admmnet56, DMRNet's ½ on the last iterate), and the
generated network must equal it. A user spec with an accumulator gets the same history lowering.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from test_zoo import randomise_bn
from torch import nn

from derive.models import create_model

Weights = Callable[[int], tuple[list[float], list[float]]]


def admm_first_path(k: int) -> tuple[list[float], list[float]]:
    """(13) unrolled, z′ path: z′ₖ₊₁ = ½T(z′ₖ) + ½zₖ − ½Σ_{t=1}^{k} z′ₜ + ½Σ_{t=1}^{k} zₜ, the ½ on T
    absorbed by T: α on z′ₜ is −½ for t ≥ 1, β on zₜ is ½ for t ≥ 1 plus ½ at t = k."""
    alpha = [-0.5 if t >= 1 else 0.0 for t in range(k + 1)]
    beta = [(0.5 if t >= 1 else 0.0) + (0.5 if t == k else 0.0) for t in range(k + 1)]
    return alpha, beta


def dmrnet(k: int) -> tuple[list[float], list[float]]:
    """DMRNet (Zhao et al.): α = β = ½ on the last iterate only."""
    last = [0.0] * k + [0.5]
    return last, list(last)


def c5_stage_by_hand(
    stage_input: torch.Tensor,
    shortcut: nn.Module,
    paths: list[tuple[nn.Module, nn.Module]],
    weights: Weights,
) -> torch.Tensor:
    """One (C5) stage: `paths[k]` is block k's (T′, T), `weights(k)` its (α, β) over t = 0 … k."""
    z0 = shortcut(stage_input)
    primes, zs = [z0], [z0]
    for k, (t_prime, t) in enumerate(paths):
        alpha, beta = weights(k)
        shared = sum(a * p for a, p in zip(alpha, primes, strict=True))
        shared = shared + sum(b * z for b, z in zip(beta, zs, strict=True))
        read_prime, read = (stage_input, stage_input) if k == 0 else (primes[-1], zs[-1])
        primes.append(F.relu(t_prime(read_prime) + shared))
        zs.append(F.relu(t(read) + shared))
    return (primes[-1] + zs[-1]) / 2


def network_by_hand(model: nn.Module, x: torch.Tensor, weights: Weights) -> torch.Tensor:
    """stem → (C5) stages by hand → head, with the model's own modules for S, T′, T and the rest."""
    h = model.stem(x)
    for stage in model.stages:
        paths = [(block.branch_prime, block.branch) for block in stage.blocks]
        h = c5_stage_by_hand(h, stage.shortcut, paths, weights)
    return model.head(h)


@pytest.mark.parametrize(
    ("name", "weights"), [("admmnet56", admm_first_path), ("dmrnet56", dmrnet)]
)
def test_zoo_network_is_c5_computed_by_hand(name: str, weights: Weights) -> None:
    torch.manual_seed(0)
    model = create_model(name).double().eval()
    randomise_bn(model)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = network_by_hand(model, x, weights)
        got = model(x)
        wrong = network_by_hand(model, x, dmrnet if weights is admm_first_path else admm_first_path)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(got, wrong, atol=1e-3)  # the comparison can fail
