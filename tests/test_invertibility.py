"""Which derived recurrences can be run backwards (derive.algorithms.forms.invertibility).

The rule: a lagged form is invertible when its oldest state enters only linearly, outside T, with a
coefficient that is not 0. Expectations here come from the papers' recurrences read by hand, and
the inverse step of the generated code is checked against a forward written out in the test.
"""

from __future__ import annotations

import math

import pytest
import torch
from train_fixtures import single_thread  # noqa: F401

from derive.algorithms import get_algorithm, list_algorithms, recurrence_of
from derive.algorithms.forms import invertibility
from derive.cli import main
from derive.codegen.generate import generate
from derive.codegen.loader import load_generated

EXPECTED = {
    "gd": (False, "zₖ enters through T"),  # (7): z_{k+1} = Φ(W z_k)
    "heavyball": (True, ""),  # (10): T(z_k) + β z_k − β z_{k−1}
    "nesterov": (False, "zₖ₋₁ enters through T"),  # (11): T((1 + β_k) z_k − β_k z_{k−1})
    "nesterov_sc": (False, "zₖ₋₁ enters through T"),
    "triple_momentum": (False, "identically 0"),  # see the next test
    "nesterov2": (False, "all-history form"),  # (12)
    "admm": (False, "(C5) form sums over every earlier state"),  # (13)
    "qhm": (False, "multi-stream form keeps 2 streams"),  # x and the gradient average m
    "extragradient": (False, "2 T evaluations"),  # T at x and at the extrapolated point
    "heavyball_velocity": (False, "multi-stream form keeps 2 streams"),  # x and v
}


def test_every_builtin_algorithm_is_decided_as_read_by_hand() -> None:
    assert set(EXPECTED) == set(list_algorithms())
    for name, (invertible, reason) in EXPECTED.items():
        decision = invertibility(recurrence_of(get_algorithm(name)))
        assert decision.invertible is invertible, name
        assert reason in decision.reason, (name, decision.reason)
        module = load_generated(f"{name}_conv")
        assert module.INVERTIBLE is invertible
        assert module.INVERTIBILITY == decision.summary()


def test_heavy_ball_inverse_equation_is_in_the_generated_docstrings() -> None:
    decision = invertibility(recurrence_of(get_algorithm("heavyball")))
    assert decision.equation == "zₖ₋₁ = (zₖ₊₁ − T_k(zₖ) − β₁·zₖ)/β₂"
    module = load_generated("heavyball_conv")
    assert decision.equation in module.__doc__
    assert decision.equation in module.Block.inverse.__doc__


def test_triple_momentum_has_no_linear_oldest_term() -> None:
    """Van Scoy et al.: α = 1 + ρ, β = ρ²/(2 − ρ), γ = ρ²/((1 + ρ)(2 − ρ)), so αγ = β and the
    z_{k−1} coefficient αγ − β of z_{k+1} = αT(y_k) + … vanishes for every κ; z_{k−1} enters only
    through y_k = (1 + γ)z_k − γz_{k−1}, inside T."""
    module = load_generated("triple_momentum_conv")
    for kappa in (2.0, 10.0, 1e4):
        rho = 1 - 1 / math.sqrt(kappa)
        alpha, beta = 1 + rho, rho**2 / (2 - rho)
        gamma = rho**2 / ((1 + rho) * (2 - rho))
        assert abs(alpha * gamma - beta) < 1e-15
        coefficients = module.block_coefficients(1, kappa=kappa)
        assert abs(coefficients["beta2"]) < 1e-15 and coefficients["gamma2"] == pytest.approx(
            -gamma
        )
    decision = invertibility(recurrence_of(get_algorithm("triple_momentum")))
    assert "enters through T" in decision.reason and "β₂ = α·γ − β" in decision.reason


def test_a_coefficient_that_is_zero_at_the_defaults_is_not_invertible(tmp_path) -> None:
    source = generate("heavyball", "conv", {"beta": 0.0}).source
    assert "INVERTIBLE = False" in source and "0 at the default coefficients" in source
    assert main(["network", "--algo", "heavyball", "--coef", "beta=0", "--reversible"]) == 2


def test_generated_inverse_recovers_the_oldest_state() -> None:
    module = load_generated("heavyball_conv")
    torch.manual_seed(0)
    branch = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Tanh()).double()
    for beta1, beta2 in ((1.0, -1.0), (0.7, -0.4), (2.0, 1.5)):
        block = module.Block(branch, {"beta1": beta1, "beta2": beta2})
        z, z_prev = torch.randn(2, 1, 3, 5, 5, dtype=torch.float64).unbind(0)
        z_next = branch(z) + beta1 * z + beta2 * z_prev  # (C1), written out
        assert torch.allclose(block([z, z_prev]), z_next, rtol=1e-14, atol=1e-14)
        back = block.inverse([z_next, z], block.transform([z]))
        assert torch.allclose(back, z_prev, rtol=1e-12, atol=1e-12)
        assert block.not_invertible_because() is None


@pytest.mark.parametrize(
    "coefficients,modes,post,reason",
    [
        ({"beta1": 1.0, "beta2": 0.0}, {"beta2": "pruned"}, None, "β₂ is pruned"),
        ({"beta1": 1.0, "beta2": 0.0}, {}, None, "β₂ = 0"),
        ({"beta1": 1.0, "beta2": -1.0}, {}, torch.relu, "ρ = relu after the sum"),
    ],
)
def test_blocks_built_without_the_oldest_term_say_why(coefficients, modes, post, reason) -> None:
    block = load_generated("heavyball_conv").Block(torch.nn.Identity(), coefficients, modes, post)
    assert reason in block.not_invertible_because()


def test_network_cli_reports_and_requires_invertibility(capsys) -> None:
    assert main(["network", "--algo", "heavyball", "--reversible"]) == 0
    assert "zₖ₋₁ = (zₖ₊₁" in capsys.readouterr().out
    for name in ("gd", "nesterov", "triple_momentum", "nesterov2", "admm"):
        assert main(["network", "--algo", name, "--reversible"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("derive: error:") and "not invertible" in err
        assert err.count("\n") == 1
    assert main(["network", "--algo", "nesterov", "--show"]) == 0
    assert "not invertible: zₖ₋₁ enters through T" in capsys.readouterr().out
