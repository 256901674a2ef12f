"""The proof machinery catches wrong energies: each check can fail, and fails for the right reason."""

from __future__ import annotations

import random
import time

import mpmath as mp
import pytest
import sympy as sp

from derive.symbolic import pieces, proof_numeric, proof_symbolic
from derive.symbolic.numeric_eval import polylog
from derive.symbolic.proof_symbolic import (
    ASSEMBLED,
    CHAIN_RULE,
    CONTINUITY,
    DERIVATIVE,
    PHI_CONTINUITY,
    REAL,
)
from derive.symbolic.symbols import x
from derive.symbolic.timelimit import time_limit

RELU = sp.Piecewise((x, x > 0), (0, True))
SOFTSIGN = x / (1 + sp.Abs(x))


def kinds_failing(proof):
    return {step.kind for step in proof.failures()}


def test_chain_rule_lemma_holds_exactly():
    chain, symmetric = proof_symbolic.chain_rule_lemma(3)
    assert chain.ok is True and chain.kind == CHAIN_RULE
    assert symmetric.ok is True


PSI = sp.Function("Psi")
WRONG_CLAIMS = {
    "U transposed": lambda U, phi, args: U.T * sp.Matrix([phi(a) for a in args]),
    "Phi at Ux": lambda U, phi, args: (
        U * sp.Matrix([phi((U * sp.Matrix(args)).row(i)[0]) for i in range(U.rows)])
    ),
    "Psi for Phi": lambda U, phi, args: U * sp.Matrix([PSI(a) for a in args]),
    "twice": lambda U, phi, args: 2 * U * sp.Matrix([phi(a) for a in args]),
    "Phi of the sum": lambda U, phi, args: U * sp.Matrix([phi(sum(args))] * U.rows),
}


@pytest.mark.parametrize("claim", list(WRONG_CLAIMS))
def test_chain_rule_step_refutes_a_wrong_claim(claim):
    """The lemma differentiates and compares with the claimed right side, never with itself."""
    step = proof_symbolic.chain_rule_step(2, WRONG_CLAIMS[claim])
    assert step.ok is False and step.kind == CHAIN_RULE
    assert proof_symbolic.chain_rule_step(2).ok is True


def test_symmetric_step_refutes_a_general_u():
    assert proof_symbolic.symmetric_step(3, symmetric=False).ok is False
    assert proof_symbolic.symmetric_step(3).ok is True


def test_correct_energies_pass_every_step():
    for phi, psi in [
        (sp.tanh(x), sp.log(sp.cosh(x))),
        (RELU, sp.Piecewise((x**2 / 2, x > 0), (0, True))),
        (SOFTSIGN, sp.Abs(x) - sp.log(1 + sp.Abs(x))),
    ]:
        proof = proof_symbolic.prove(phi, psi)
        assert proof.proved, [(s.kind, s.ok) for s in proof.steps if s.ok is not True]
        assert not proof.undecided and any(s.kind == ASSEMBLED and s.ok for s in proof.steps)


def test_wrong_derivative_is_refuted():
    proof = proof_symbolic.prove(x, x**2 / 2 + x**3)
    assert not proof.ok
    assert kinds_failing(proof) == {DERIVATIVE, ASSEMBLED}


def test_jump_is_refuted_with_its_limits():
    proof = proof_symbolic.prove(RELU, sp.Piecewise((x**2 / 2 + 1, x > 0), (0, True)))
    assert kinds_failing(proof) == {CONTINUITY}
    (step,) = proof.failures(CONTINUITY)
    assert tuple(step.value) == (0, 1)


def test_complex_branch_is_refuted():
    psi = sp.Piecewise((x - sp.log(x + 1), x > 0), (-x - sp.log(x - 1), True))
    proof = proof_symbolic.prove(SOFTSIGN, psi)
    assert REAL in kinds_failing(proof)
    assert DERIVATIVE not in kinds_failing(proof)  # the derivative matches formally


def test_discontinuous_phi_is_not_differentiable():
    proof = proof_symbolic.prove(sp.sign(x), sp.Abs(x))
    assert kinds_failing(proof) == {PHI_CONTINUITY}


def test_assembled_check_alone_catches_a_wrong_energy():
    phi_br = pieces.split(sp.tanh(x))
    right = sp.log(sp.cosh(x))
    wrong = right + x**3 / 1000
    assert proof_symbolic.assembled_check(sp.tanh(x), right, phi_br, pieces.split(right)).ok is True
    assert (
        proof_symbolic.assembled_check(sp.tanh(x), wrong, phi_br, pieces.split(wrong)).ok is False
    )


def test_numeric_check_passes_and_fails_for_the_right_reason():
    br = pieces.split(RELU)
    good = proof_numeric.check(RELU, sp.Piecewise((x**2 / 2, x > 0), (0, True)), br, [])
    assert good.ok and good.max_error < 1e-30 and good.points >= 20 and good.gradient_points >= 2
    wrong = proof_numeric.check(RELU, sp.Piecewise((x**2, x > 0), (0, True)), br, [])
    assert not wrong.ok and wrong.max_error > 0.1 and wrong.continuous
    jump = proof_numeric.check(RELU, sp.Piecewise((x**2 / 2 + 1, x > 0), (0, True)), br, [])
    assert not jump.ok and not jump.continuous
    complex_psi = sp.Piecewise((x - sp.log(x + 1), x > 0), (-x - sp.log(x - 1), True))
    soft = proof_numeric.check(SOFTSIGN, complex_psi, pieces.split(SOFTSIGN), [])
    assert not soft.ok and not soft.real


def test_numeric_points_lie_on_both_sides_of_every_branch_point():
    br = pieces.split(sp.Piecewise((-1, x < -1), (x, x <= 1), (1, True)))
    points = proof_numeric._scalar_points(br, random.Random(0), 10)
    for b in (-1, 1):
        assert any(b - 0.5 < p < b - 1e-3 for p in points) and any(
            b + 1e-3 < p < b + 0.5 for p in points
        )
    assert min(abs(p - b) for p in points for b in (-1, 1)) >= 1e-3
    assert max(abs(p) for p in points) >= 40


def test_fast_polylog_agrees_with_mpmath():
    rng = random.Random(3)
    with mp.workdps(40):
        for _ in range(200):
            z = -mp.exp(mp.mpf(rng.uniform(-30, 30)))
            assert abs(polylog(2, z) - mp.polylog(2, z)) <= mp.mpf(10) ** -35 * max(
                1, abs(mp.polylog(2, z))
            )
        assert polylog(2, mp.mpf(2)) == mp.polylog(2, mp.mpf(2))  # other arguments untouched


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_time_limit_stops_the_block_and_nests():
    start = time.monotonic()
    with time_limit(0.2) as outer:
        with time_limit(5.0) as inner:
            _spin(3.0)
    assert outer.expired and not inner.expired
    with time_limit(5.0) as outer2:
        with time_limit(0.1) as inner2:
            _spin(3.0)
        done = True
    assert inner2.expired and not outer2.expired and done
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("value", [sp.Rational(1, 2), 3])
def test_parameters_are_proved_for_any_positive_value(value):
    a = sp.Symbol("a", positive=True)
    phi = sp.Piecewise((x, x > 0), (a * (sp.exp(x) - 1), True))
    psi = sp.Piecewise((x**2 / 2, x > 0), (a * (sp.exp(x) - x - 1), True))
    assert proof_symbolic.prove(phi, psi).ok
    assert proof_numeric.check(phi, psi, pieces.split(phi), [{a: value}]).ok


WRONG_PHI_CASES = {
    "tanh": (sp.tanh(x), sp.log(sp.cosh(x))),
    "sigmoid": (1 / (1 + sp.exp(-x)), sp.log(1 + sp.exp(x)) - sp.log(2)),
    "relu": (RELU, sp.Piecewise((x**2 / 2, x > 0), (0, True))),
    "softsign": (SOFTSIGN, sp.Abs(x) - sp.log(1 + sp.Abs(x))),
}


@pytest.mark.parametrize("name", sorted(WRONG_PHI_CASES))
def test_a_wrong_phi_with_the_right_psi_is_refuted_by_each_proof(name):
    """Inject Φ + x/7: the derivative step, the assembled ∇f check (run on its own, not short-cut
    by the failed derivative) and the numeric proof must each report the failure."""
    phi, psi = WRONG_PHI_CASES[name]
    wrong = phi + x / 7
    proof = proof_symbolic.prove(wrong, psi)
    assert not proof.ok and DERIVATIVE in kinds_failing(proof)
    assembled = proof_symbolic.assembled_check(wrong, psi, pieces.split(wrong), pieces.split(psi))
    assert assembled.ok is False
    numeric = proof_numeric.check(wrong, psi, pieces.split(wrong), [])
    assert not numeric.ok and numeric.max_error > 1e-3


def _step(proof, kind):
    return next(step for step in proof.steps if step.kind == kind)


def test_branch_cut_step_proves_only_arguments_that_stay_off_the_cut():
    """log(x² + 1) has a positive argument and Li₂(−(1 + i)eˣ/2) one with Im ≠ 0: proved.
    Li₂(eˣ) reaches its cut [1, ∞) for x ≥ 0: not proved (left to the numeric proof)."""
    safe = proof_symbolic.prove(2 * x / (x**2 + 1), sp.log(x**2 + 1), assembled=False)
    assert _step(safe, proof_symbolic.CUTS).ok is True
    assert "z > 0 for z = x² + 1" in _step(safe, proof_symbolic.CUTS).detail
    complex_arg = sp.polylog(2, -(1 + sp.I) * sp.exp(x) / 2)
    step = proof_symbolic._cuts_step(pieces.split(complex_arg).cells[0], "claim")
    assert step.ok is True and step.detail.startswith("Im z ≠ 0")
    crossing = proof_symbolic._cuts_step(pieces.split(sp.polylog(2, sp.exp(x))).cells[0], "claim")
    assert crossing.ok is None and "undecided" in crossing.detail


def test_origin_step_refutes_an_energy_not_zero_at_zero():
    shifted = proof_symbolic.prove(sp.cos(x), sp.sin(x) + 1, assembled=False)
    assert _step(shifted, proof_symbolic.ORIGIN).ok is False
    assert _step(proof_symbolic.prove(sp.cos(x), sp.sin(x), assembled=False), "origin").ok
