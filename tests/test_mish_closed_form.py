"""Mish (and the family x·R(eˣ)) in closed form: Ψ with dilogarithms of complex arguments.

Every expectation is independent of the code under test: mpmath quadrature of Φ written by hand
(40 digits), mpmath differentiation of the Ψ read back from the JSON string, and the imaginary
parts of the log and Li₂ arguments evaluated directly.
"""

from __future__ import annotations

import mpmath as mp
import pytest
import sympy as sp
from symbolic_cache import (
    cached_pipeline,  # noqa: F401  (autouse: one derivation per activation)
    derive_activation,
)

from derive.cli import main
from derive.symbolic import derive_expression, exp_rational
from derive.symbolic.symbols import x as REAL_X

X = sp.Symbol("x")
POINTS = (-30, -12.5, -5, -0.7, 0.3, 1, 2.5, 7, 12.5, 30)


def _mish(t):
    return t * mp.tanh(mp.log1p(mp.exp(t)))


def _quad(phi, v):
    return mp.quad(phi, [0, v])


def _json_function(record):
    """Ψ read back from the JSON string (the JSON output), as an mpmath function."""
    return sp.lambdify(X, sp.sympify(record.to_json()["psi"]), "mpmath")


@pytest.fixture(scope="module")
def mish():
    return derive_activation("mish")


def test_mish_is_a_closed_form_proved_both_ways(mish):
    assert mish.energy.closed_form and mish.verified
    assert not mish.psi.has(sp.Integral) and mish.psi.has(sp.polylog)
    assert "partial fractions" in mish.energy.method
    kinds = {step.kind: step.ok for step in mish.symbolic.steps}
    assert kinds["derivative"] is True  # Ψ′ − Φ simplified to 0 by SymPy, not numerically
    assert kinds["branch-cuts"] is True and kinds["origin"] is True and kinds["real"] is True
    assert mish.symbolic.proved and mish.numeric.ok
    assert mish.numeric.max_error < 1e-30


def test_mish_energy_matches_quadrature_at_40_digits_out_to_30(mish):
    psi = _json_function(mish)
    with mp.workdps(40):
        for v in POINTS:
            expected = _quad(_mish, mp.mpf(v))
            got = psi(mp.mpf(v))
            assert abs(mp.im(got)) < mp.mpf(10) ** -35, v
            assert abs(mp.re(got) - expected) < mp.mpf(10) ** -30 * max(1, abs(expected)), v


def test_mish_energy_is_zero_at_zero_and_its_derivative_is_mish(mish):
    psi = _json_function(mish)
    with mp.workdps(40):
        assert abs(psi(mp.mpf(0))) < mp.mpf(10) ** -38
        for v in (-9.5, -1.3, 0.4, 3.3, 11):
            assert abs(mp.diff(psi, mp.mpf(v)) - _mish(mp.mpf(v))) < mp.mpf(10) ** -30, v


def test_mish_log_and_dilog_arguments_never_touch_their_cuts(mish):
    """The cut of log is (−∞, 0] and that of Li₂ is [1, ∞): both lie on the real axis. Every
    argument that depends on x has an imaginary part that never vanishes, or is a positive real
    (log) — checked at many points, and exactly: Im of the argument is a non-zero constant
    times eˣ."""
    functions = mish.psi.atoms(sp.log, sp.polylog)
    moving = [f for f in functions if f.has(REAL_X)]
    assert any(isinstance(f, sp.polylog) for f in moving)
    grid = [mp.mpf(k) / 4 for k in range(-200, 201)]
    with mp.workdps(30):
        for f in moving:
            arg = f.args[-1]
            value = sp.lambdify(REAL_X, arg, "mpmath")
            if isinstance(f, sp.polylog):
                assert sp.simplify(sp.im(arg) / sp.exp(REAL_X)) == sp.Rational(-1, 2)
                assert all(mp.im(value(v)) < 0 for v in grid)
            else:
                assert all(mp.im(value(v)) == 0 and mp.re(value(v)) > 0 for v in grid)


def test_mish_text_output_prints_the_closed_form(capsys):
    assert main(["activation", "mish"]) == 0
    out = capsys.readouterr().out
    psi_line = next(line for line in out.splitlines() if line.startswith("  Ψ(x)"))
    assert "Li₂" in psi_line and "Re " in psi_line and "Im " in psi_line
    assert "∫" not in psi_line and "closed form" in out and "verified: yes" in out


@pytest.mark.parametrize(
    ("text", "phi"),
    [
        ("x/cosh(x)", lambda t: t / mp.cosh(t)),
        ("1/(exp(2*x) + exp(x) + 1)", lambda t: 1 / (mp.exp(2 * t) + mp.exp(t) + 1)),
        ("x*tanh(x)", lambda t: t * mp.tanh(t)),
        ("x/(exp(2*x) + 2*exp(x) + 5)", lambda t: t / (mp.exp(2 * t) + 2 * mp.exp(t) + 5)),
    ],
)
def test_partial_fractions_over_complex_roots_integrate_the_family(text, phi):
    g = sp.sympify(text, locals={"x": REAL_X})
    antiderivative = exp_rational.antiderivative(g)
    assert antiderivative is not None
    G = sp.lambdify(REAL_X, antiderivative, "mpmath")
    with mp.workdps(40):
        for v in (-20, -3.5, 0.6, 4, 20):
            got = G(mp.mpf(v)) - G(mp.mpf(0))
            assert mp.im(got) == 0, (text, v)  # the real form: Re and Im of complex terms
            expected = _quad(phi, mp.mpf(v))
            assert abs(got - expected) < mp.mpf(10) ** -30 * max(1, abs(expected)), (text, v)


@pytest.mark.parametrize(
    "text",
    [
        "1/(exp(x) - 2)",  # a real pole at x = log 2: no continuous antiderivative
        "x/(exp(x) + 1)**2",  # a repeated root: not this rule's shape
        "x**2/(exp(x) + 1)",  # x² is beyond k ≤ 1
        "x*exp(x/2)",  # not rational in eˣ
    ],
)
def test_partial_fractions_refuse_what_they_cannot_do(text):
    assert exp_rational.antiderivative(sp.sympify(text, locals={"x": REAL_X})) is None


def test_user_expression_x_tanh_x_now_has_a_closed_form():
    record = derive_expression("x*tanh(x)", seconds=None)
    assert record.energy.closed_form and record.verified
    psi = _json_function(record)
    with mp.workdps(30):
        for v in (-6, 1.5, 9):
            expected = _quad(lambda t: t * mp.tanh(t), mp.mpf(v))
            assert abs(mp.re(psi(mp.mpf(v))) - expected) < mp.mpf(10) ** -25, v
