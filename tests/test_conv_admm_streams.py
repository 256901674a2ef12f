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
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_conv_streams import assert_one_sgd_step_trains, conv_stage, optimizer_z, spec_module
from test_fc_matches_optimizer import spd_and_sqrt
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


def test_admmnet56_and_dmrnet56_have_two_resnet56_branches_per_block() -> None:
    """Two paths of ResNet-56's blocks: 2 × resnet56's parameters less one stem and one head."""
    resnet = create_model("resnet56")
    once = sum(p.numel() for m in (resnet.stem, resnet.head) for p in m.parameters())
    expected = 2 * sum(p.numel() for p in resnet.parameters()) - once
    assert expected == 1_704_922
    for name in ("admmnet56", "dmrnet56"):
        assert sum(p.numel() for p in create_model(name).parameters()) == expected, name


ADMM_SPEC = """
name = "admm_spec"
title = "Linearized ADMM, the argmin steps solved"
states = ["x", "y", "lam"]
output = "y[k]"
[update]
"x[k+1]" = "(x[k] + y[k] - grad(x[k]) - lam[k])/2"
"y[k+1]" = "(y[k] + x[k+1] - grad(y[k]) + lam[k])/2"
"lam[k+1]" = "lam[k] + x[k+1] - y[k+1]"
[initial]
"y[0]" = "x[0]"
"lam[0]" = "0"
"""


def test_a_specs_accumulator_becomes_history_sums_and_the_stage_runs_admm(tmp_path: Path) -> None:
    """λ is an accumulator: the general lowering unrolls it into history sums over x and y (no
    (C5) pass), and with T = Φ(W·) fixed the stage returns U⁻¹y_K of ADMM run directly."""
    module = spec_module(tmp_path, ADMM_SPEC)
    assert module.FORM == "streams" and set(module.HISTORY) == set(module.STREAMS)
    assert len(module.STREAMS) == 2 and module.T_EVALUATIONS == 2
    n, batch, depth = 5, 3, 7
    w, u = spd_and_sqrt(n, seed=2)
    z0 = np.random.default_rng(8).normal(size=(batch, n))
    with torch.no_grad():
        z = conv_stage(module, depth, w)(torch.tensor(z0)).numpy()
    np.testing.assert_allclose(z, optimizer_z("admm", z0, u, depth), atol=1e-9)
    with torch.no_grad():
        shorter = conv_stage(module, depth - 1, w)(torch.tensor(z0)).numpy()
    assert not np.allclose(shorter, z, atol=1e-6)  # the comparison can fail


def test_a_specs_accumulator_network_trains_one_step_with_learnable_history_weights(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    module = spec_module(tmp_path, ADMM_SPEC)
    weights = [c for c in module.COEFFICIENTS if c.endswith("_sum")]
    assert weights
    modes = {weights[0]: "learnable", weights[-1]: "pruned"}
    model = module.cifar_resnet(depth=14, widths=(4, 8, 8), modes=modes)
    learnable = [p for n, p in model.named_parameters() if n.endswith(f"{weights[0]}.learnable")]
    assert len(learnable) == 6  # one weight vector per block
    assert_one_sgd_step_trains(model)
