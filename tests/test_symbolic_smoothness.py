"""Hessian bounds of f from the range of Φ′, against hand-computed values and numpy grids."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import sympy as sp

from derive.symbolic import derive_expression, smoothness_for
from derive.symbolic.smoothness import Bound, from_range

GRID = np.linspace(-40, 40, 400001)


def _sigmoid(t):
    return 1 / (1 + np.exp(-t))


def _normal_pdf(t):
    return np.exp(-(t**2) / 2) / math.sqrt(2 * math.pi)


_erf = np.vectorize(math.erf)
# Φ′ written by hand (float64), for the activations whose extrema are not simple numbers.
DERIVATIVES = {
    "swish": lambda t: _sigmoid(t) * (1 + t * (1 - _sigmoid(t))),
    "gelu": lambda t: (1 + _erf(t / math.sqrt(2))) / 2 + t * _normal_pdf(t),
    "mish": lambda t: (
        np.tanh(np.log1p(np.exp(t))) + t * _sigmoid(t) * (1 - np.tanh(np.log1p(np.exp(t))) ** 2)
    ),
}


@pytest.mark.parametrize(
    ("name", "params", "m", "M"),
    [
        ("sigmoid", {}, 0, sp.Rational(1, 4)),
        ("tanh", {}, 0, 1),
        ("softplus", {}, 0, 1),
        ("softsign", {}, 0, 1),
        ("relu", {}, 0, 1),
        ("leaky_relu", {"alpha": "0.2"}, sp.Rational(1, 5), 1),
        ("elu", {"a": "2"}, 0, 2),
        ("hardsigmoid", {}, 0, sp.Rational(1, 6)),
        ("hardswish", {}, sp.Rational(-1, 2), sp.Rational(3, 2)),
        ("identity", {}, 1, 1),
    ],
)
def test_exact_ranges(name, params, m, M):
    s = smoothness_for(name, **params)
    assert s.m.exact == m and s.M.exact == M


@pytest.mark.parametrize("name", sorted(DERIVATIVES))
def test_numeric_ranges_match_a_dense_float64_grid(name):
    values = DERIVATIVES[name](GRID)
    s = smoothness_for(name)
    assert s.m.value == pytest.approx(values.min(), abs=1e-8)
    assert s.M.value == pytest.approx(values.max(), abs=1e-8)


def test_momenta_at_a_given_sigma_match_hand_formulas():
    s = smoothness_for("hardswish", sigma=0.5)  # Φ′ ∈ [−1/2, 3/2]
    mu, L = 1 - 1.5 * 0.25, 1 + 0.5 * 0.25
    kappa = L / mu
    beta = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    assert (s.mu, s.L) == pytest.approx((mu, L))
    assert s.kappa == pytest.approx(kappa)
    assert s.nesterov == pytest.approx(
        (math.sqrt(L) - math.sqrt(mu)) / (math.sqrt(L) + math.sqrt(mu))
    )
    assert s.nesterov == pytest.approx(beta) and s.heavy_ball == pytest.approx(beta**2)


def test_default_sigma_is_half_the_critical_one():
    s = smoothness_for("sigmoid")  # M = 1/4: sigma^2 = 2, mu = 1/2, L = 1
    assert s.sigma == pytest.approx(math.sqrt(2))
    assert (s.mu, s.L, s.kappa) == pytest.approx((0.5, 1.0, 2.0))
    assert "sigma" in s.line() and "kappa = 2" in s.line()


def test_not_strongly_convex_when_sigma_is_too_large():
    s = smoothness_for("tanh", sigma=1.5)
    assert s.mu < 0 and s.kappa is None and s.nesterov is None
    assert from_range(Bound(0, 0), Bound(1, 1), sigma=1.0).kappa is None


def test_unbounded_and_discontinuous_derivatives():
    cubic = derive_expression("x**3", "cubic").smoothness()
    assert math.isinf(cubic.M.value) and cubic.kappa is None
    step = derive_expression("sign(x)", "step").smoothness()  # a jump: Φ′ has a Dirac mass
    assert math.isinf(step.M.value) and step.kappa is None


def test_default_parameters_are_stated():
    s = smoothness_for("elu")
    assert s.parameters == "a = 1 (default)" and s.M.exact == 1


@pytest.mark.parametrize("name", sorted(DERIVATIVES))
def test_printed_line_defines_m_as_the_sup_of_phi_prime(name):
    """The σ rule σ² = 1/(2M) says what M is, and the printed M is the sup of Φ′ over a dense
    float64 grid of the hand-written derivative (to the 6 printed digits)."""
    line = smoothness_for(name).line()
    found = re.search(r"sigma\^2 = 1/\(2M\), M = sup Phi' = ([0-9.]+)\)", line)
    assert found, line
    printed = float(found.group(1))
    assert printed == pytest.approx(DERIVATIVES[name](GRID).max(), rel=1e-5)


def test_printed_m_is_exact_where_it_is_known():
    assert "M = sup Phi' = 1/4)" in smoothness_for("sigmoid").line()
