"""The numeric proof: mpmath at 40 digits, fixed seed, points on both sides of every branch point.

Checks, for every parameter sample:
  * Ψ′(x) = Φ(x) (mpmath.diff of Ψ) at random points of every branch, ≥ 1e-3 from branch points,
    plus large-magnitude points;
  * Ψ real (no imaginary part) and finite at all those points;
  * Ψ continuous at every branch point (the jump beyond the trapezoid estimate of ∫Φ over ±ε);
  * ∇f = x − UΦ(Uᵀx) for the assembled f with a random symmetric positive-definite 3×3 U and
    random x, each Uᵢᵀx ≥ 1e-3 from branch points (partial derivatives by mpmath.diff).
Errors are relative to max(1, |expected|); the worst one is reported. For the numeric energy
Ψ = ∫₀ˣ Φ (quadrature) derivatives are central differences (h = 1e-15 at 55 digits, error far
below the tolerance) instead of mpmath.diff, which costs twice as many quadratures.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from derive.symbolic.numeric_eval import integral_function, is_finite, is_real, mp_function
from derive.symbolic.pieces import Branching
from derive.symbolic.timelimit import budget_spent, time_limit

DPS = 40
TOLERANCE = mpmath.mpf(10) ** -25
MARGIN = 1e-3
SEED = 20180101
FAR = (20.0, 50.0)


@dataclass(frozen=True)
class NumericProof:
    ok: bool
    max_error: float
    points: int  # scalar points (Ψ′ = Φ), over all parameter samples
    gradient_points: int  # points of the assembled-f check
    samples: tuple[str, ...]  # the parameter values used, as text
    real: bool
    continuous: bool
    failures: tuple[str, ...]  # first few failing checks, for the report
    dps: int = DPS
    timed_out: bool = False  # the time budget ran out before every check was done


def _spd_matrix(rng: random.Random, n: int = 3) -> mpmath.matrix:
    b = mpmath.matrix([[rng.uniform(-1, 1) for _ in range(n)] for _ in range(n)])
    return b * b.T / n + mpmath.eye(n) / 2


def _scalar_points(branching: Branching, rng: random.Random, per_side: int) -> list[float]:
    """Per cell: points close to each finite end (1e-3 to 0.5 inside, log-uniform), points spread
    over the cell, and large-magnitude points of unbounded cells."""
    points: list[float] = []
    for cell in branching.cells:
        count = per_side if branching.is_piecewise else 2 * per_side
        width = math.inf if cell.lo.is_infinite or cell.hi.is_infinite else float(cell.hi - cell.lo)
        reach = math.log10(max(min(0.5, width / 2 - MARGIN), MARGIN))
        for end, inward in ((cell.lo, 1.0), (cell.hi, -1.0)):
            if not end.is_infinite:
                points += [
                    float(end) + inward * 10 ** rng.uniform(-3, reach)
                    for _ in range(max(3, count // 2))
                ]
        points += cell.samples(rng, count, MARGIN, 8.0)
        points += cell.far_points(FAR)
    return points


def _gradient_points(
    branching: Branching, u: mpmath.matrix, rng: random.Random, count: int
) -> list[list[float]]:
    breaks = [float(b) for b in branching.breakpoints]
    found: list[list[float]] = []
    scale = 3.0
    while len(found) < count:
        candidate = [rng.uniform(-scale, scale) for _ in range(3)]
        args = u.T * mpmath.matrix(candidate)
        if all(abs(float(a) - b) >= MARGIN for a in args for b in breaks):
            found.append(candidate)
            scale = 3.0 if len(found) < count - 1 else 12.0  # the last one larger
    return found


def _derivative(func, point, numeric: bool):
    """dΨ/dx at `point`: mpmath.diff, or a central difference for a quadrature-based Ψ."""
    if not numeric:
        return mpmath.diff(func, point)
    with mpmath.workdps(DPS + 15):
        h = mpmath.mpf(10) ** -15
        point = mpmath.mpf(point)
        return (func(point + h) - func(point - h)) / (2 * h)


def _relative(got, expected) -> mpmath.mpf:
    return abs(got - expected) / max(1, abs(expected))


@dataclass
class _Tally:
    """What the checks have found so far."""

    worst: mpmath.mpf = field(default_factory=lambda: mpmath.mpf(0))
    failures: list[str] = field(default_factory=list)
    real: bool = True
    continuous: bool = True
    points: int = 0
    gradient_points: int = 0


def check(
    phi: sp.Expr,
    psi: sp.Expr,
    branching: Branching,
    samples: Sequence[dict[sp.Symbol, sp.Expr]],
    *,
    per_side: int = 12,
    gradient_count: int = 4,
) -> NumericProof:
    """Run every numeric check of Ψ (closed form or ∫₀ˣ Φ) against Φ, for each parameter sample.

    Within a time budget (derive.symbolic.timelimit.budget) the checks stop when it is spent, at
    the latest between two points: the proof is then undecided (`timed_out`) unless a check
    already failed."""
    tally = _Tally()
    rng = random.Random(SEED)
    u = _spd_matrix(rng)  # before the DPS context, so the reported errors stay reproducible
    finished = False
    with time_limit(None) as stopped, mpmath.workdps(DPS):
        finished = _run_checks(
            phi, psi, branching, samples, (rng, u), per_side, gradient_count, tally
        )
    timed_out = stopped.expired or not finished
    max_error = float(tally.worst) if mpmath.isfinite(tally.worst) else float("inf")
    ok = not tally.failures and tally.real and tally.continuous and not timed_out
    sample_text = tuple(
        ", ".join(f"{k} = {v}" for k, v in values.items()) for values in samples if values
    )
    return NumericProof(
        ok,
        max_error,
        tally.points,
        tally.gradient_points,
        sample_text,
        tally.real,
        tally.continuous,
        tuple(tally.failures[:5]),
        timed_out=timed_out,
    )


def _run_checks(
    phi: sp.Expr,
    psi: sp.Expr,
    branching: Branching,
    samples: Sequence[dict[sp.Symbol, sp.Expr]],
    random_state: tuple[random.Random, mpmath.matrix],
    per_side: int,
    gradient_count: int,
    tally: _Tally,
) -> bool:
    """All checks, counted into `tally`; False when the time budget ran out before the end.

    `random_state`: the seeded generator and the SPD matrix U drawn from it first."""
    rng, u = random_state
    numeric = psi.has(sp.Integral)
    breaks = [float(b) for b in branching.breakpoints]
    for values in samples or [{}]:
        phi_f = mp_function(phi, values)
        psi_f = integral_function(phi_f, breaks) if numeric else mp_function(psi, values)
        label = ", ".join(f"{k} = {v}" for k, v in values.items())
        where = f" ({label})" if label else ""
        scalar = _scalar_points(
            branching, rng, per_side if not numeric else max(8, per_side * 2 // 3)
        )
        gradient = _gradient_points(branching, u, rng, gradient_count if not numeric else 2)
        for point in scalar:
            if budget_spent():
                return False
            _check_point(phi_f, psi_f, point, numeric, where, tally)
        for b in breaks:
            if budget_spent():
                return False
            _check_break(phi_f, psi_f, b, where, tally)
        for point in gradient:
            if budget_spent():
                return False
            error = _gradient_error(phi_f, psi_f, u, point, numeric)
            if error > TOLERANCE:
                tally.failures.append(
                    f"grad f - (x - U Phi(U^T x)) = {mpmath.nstr(error, 3)} at x = {point}{where}"
                )
            tally.worst = max(tally.worst, error)
            tally.gradient_points += 1
    return True


def _check_point(phi_f, psi_f, point: float, numeric: bool, where: str, tally: _Tally) -> None:
    """Ψ finite and real at `point`, and Ψ′ = Φ there."""
    p = mpmath.mpf(point)
    value = psi_f(p)
    if not is_finite(value):
        tally.failures.append(f"Psi({point:.4g}) is not finite{where}")
        tally.worst = mpmath.inf
        return
    if not is_real(value, value):
        tally.real = False
        tally.failures.append(f"Psi({point:.4g}) = {mpmath.nstr(value, 6)} is not real{where}")
    error = _relative(_derivative(psi_f, p, numeric), phi_f(p))
    if error > TOLERANCE:
        tally.failures.append(
            f"Psi'({point:.4g}) - Phi({point:.4g}) = {mpmath.nstr(error, 3)}{where}"
        )
    tally.worst = max(tally.worst, error)
    tally.points += 1


def _check_break(phi_f, psi_f, b: float, where: str, tally: _Tally) -> None:
    """Ψ continuous at the branch point `b`: its jump over ±ε is the trapezoid estimate of ∫Φ."""
    eps = mpmath.mpf(10) ** (-DPS + 15)
    left, right = psi_f(mpmath.mpf(b) - eps), psi_f(mpmath.mpf(b) + eps)
    expected = eps * (phi_f(mpmath.mpf(b) - eps) + phi_f(mpmath.mpf(b) + eps))
    jump = abs(right - left - expected)
    if not is_finite(jump) or jump > TOLERANCE:
        tally.continuous = False
        tally.failures.append(f"Psi jumps by {mpmath.nstr(right - left, 6)} at x = {b:g}{where}")
    tally.worst = max(tally.worst, jump)


def _gradient_error(
    phi_f, psi_f, u: mpmath.matrix, point: list[float], numeric: bool
) -> mpmath.mpf:
    n = u.rows

    def f(*xs):
        v = mpmath.matrix(xs)
        args = u.T * v
        return sum(xi**2 for xi in xs) / 2 - sum(psi_f(args[i]) for i in range(n))

    xs = [mpmath.mpf(c) for c in point]
    args = u.T * mpmath.matrix(xs)
    phis = mpmath.matrix([phi_f(args[i]) for i in range(n)])
    expected = mpmath.matrix(xs) - u * phis
    worst = mpmath.mpf(0)
    for k in range(n):
        if numeric:

            def along(value, k=k):
                return f(*[value if j == k else c for j, c in enumerate(xs)])

            got = _derivative(along, xs[k], True)
        else:
            got = mpmath.diff(f, xs, tuple(1 if j == k else 0 for j in range(n)))
        worst = max(worst, _relative(got, expected[k]))
    return worst
