"""The papers' printed energies: verdicts match hand derivations, corrections hold independently."""

from __future__ import annotations

import mpmath as mp
import pytest
import sympy as sp
from symbolic_cache import derive_activation

from derive.symbolic.errata import DERIVATIVE_WRONG, DISCONTINUOUS, NOT_REAL
from derive.symbolic.papers import ACML, PRINTED, SCIS

U = sp.Symbol("u")
ALPHA, A, C = sp.symbols("alpha a C")

# Hand derivations (see the docstring of each case): which failure kinds each printed entry has.
EXPECTED = {
    # d/du [u + log(1/(e^u + 1))] = 1 - e^u/(e^u+1) = σ(-u): wrong. SCIS u + log(e^-u + 1) = log(1+e^u): right.
    ("sigmoid", ACML): {DERIVATIVE_WRONG},
    ("sigmoid", SCIS): set(),
    # d/du [u - log(e^{2u} + 1)] = (1 - e^{2u})/(1 + e^{2u}) = -tanh u; SCIS log(e^u + e^-u) is right.
    ("tanh", ACML): {DERIVATIVE_WRONG},
    ("tanh", SCIS): set(),
    # d/du [-Li2(-e^u)] = log(1 + e^u) for any constant C.
    ("softplus", ACML): set(),
    ("softplus", SCIS): set(),
    # -u - log(u - 1) on u <= 0: log of a negative number (derivative u/(1-u) matches formally).
    ("softsign", ACML): {NOT_REAL},
    ("softsign", SCIS): {NOT_REAL},
    ("relu", ACML): set(),
    ("relu", SCIS): set(),
    # alpha*u^2 has derivative 2*alpha*u.
    ("leaky_relu", ACML): {DERIVATIVE_WRONG},
    ("leaky_relu", SCIS): set(),
    # a(e^u - u) -> a at 0 from the left, u^2/2 -> 0 from the right.
    ("elu", ACML): {DISCONTINUOUS},
    ("elu", SCIS): {DISCONTINUOUS},
    # ACML's log(1/(e^u+1)) instead of log(1/e^u + 1); SCIS is right (Ψ(0) = π²/12).
    ("swish", ACML): {DERIVATIVE_WRONG},
    ("swish", SCIS): set(),
}

PHI = {
    "sigmoid": lambda t: 1 / (1 + mp.exp(-t)),
    "tanh": mp.tanh,
    "softplus": lambda t: mp.log(1 + mp.exp(t)),
    "softsign": lambda t: t / (1 + abs(t)),
    "relu": lambda t: max(t, 0),
    "leaky_relu": lambda t: t if t > 0 else mp.mpf("0.3") * t,
    "elu": lambda t: t if t > 0 else 2 * (mp.exp(t) - 1),
    "swish": lambda t: t / (1 + mp.exp(-t)),
}
PARAMS = {ALPHA: sp.Rational(3, 10), A: 2, C: sp.Rational(5, 7)}


@pytest.fixture(scope="module")
def checks():
    found = {}
    for name in PHI:
        for check in derive_activation(name).paper:
            found[(name, check.source)] = check
    return found


def _function(text: str):
    expr = sp.sympify(text.removesuffix(" (up to a constant)"), locals={"u": U}).subs(PARAMS)
    return sp.lambdify(U, expr, "mpmath")


def test_the_tables_are_transcribed_for_all_eight_activations():
    assert {(e.activation, e.source) for e in PRINTED} == set(EXPECTED)


@pytest.mark.parametrize(("name", "source"), sorted(EXPECTED))
def test_verdict_matches_the_hand_derivation(checks, name, source):
    check = checks[(name, source)]
    assert set(check.kinds) == EXPECTED[(name, source)]
    assert check.verified is (not EXPECTED[(name, source)])
    assert check.to_json().keys() == {"source", "printed", "verified", "note"}
    assert ("corrected" in check.note) is (not check.verified)


@pytest.mark.parametrize(
    ("name", "source"), sorted(k for k, v in EXPECTED.items() if DERIVATIVE_WRONG in v)
)
def test_wrong_derivatives_really_are_wrong(checks, name, source):
    printed = _function(checks[(name, source)].printed)
    with mp.workdps(30):
        assert abs(mp.diff(printed, mp.mpf(-1.5)) - PHI[name](mp.mpf(-1.5))) > 0.01


def test_softsign_printed_is_complex_and_elu_printed_jumps(checks):
    softsign = _function(checks[("softsign", ACML)].printed)
    assert isinstance(softsign(mp.mpf(-1)), mp.mpc) and abs(softsign(mp.mpf(-1)).imag) > 1
    elu = _function(checks[("elu", SCIS)].printed)
    eps = mp.mpf(10) ** -12
    assert abs(elu(-eps) - elu(eps) - 2) < 1e-9  # the jump is a = 2


@pytest.mark.parametrize(("name", "source"), sorted(k for k, v in EXPECTED.items() if v))
def test_corrections_are_right_real_and_continuous(checks, name, source):
    corrected = _function(checks[(name, source)].corrected)
    with mp.workdps(30):
        for value in (-6.2, -1.3, -0.2, 0.4, 2.7, 7.5):
            v = mp.mpf(value)
            got = corrected(v)
            assert not isinstance(got, mp.mpc)
            assert abs(mp.diff(corrected, v) - PHI[name](v)) < 1e-20, (name, value)
        eps = mp.mpf(10) ** -20
        assert abs(corrected(eps) - corrected(-eps)) < 1e-15


def test_expected_corrections_from_the_hand_derivation(checks):
    assert (
        checks[("softsign", ACML)].corrected
        == "Piecewise((u - log(u + 1), u > 0), (-u - log(1 - u), True))"
    )
    elu = sp.sympify(checks[("elu", ACML)].corrected, locals={"u": U})
    assert sp.simplify(elu.args[1][0] - A * (sp.exp(U) - U - 1)) == 0
    leaky = sp.sympify(checks[("leaky_relu", ACML)].corrected, locals={"u": U})
    assert sp.simplify(leaky.args[1][0] - ALPHA * U**2 / 2) == 0


def test_a_concrete_parameter_reaches_the_printed_check():
    checks = derive_activation("leaky_relu", alpha="0").paper
    assert all(check.verified for check in checks)  # with alpha = 0 even alpha*u**2 is right
