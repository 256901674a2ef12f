"""Smoothness of the energy f(x) = ‖x‖²/2 − Σᵢ Ψ(Uᵢᵀx) from the range [m, M] of Φ′ over ℝ.

∇²f = I − U diag(Φ′(Uᵀx)) U, so for symmetric U with σ = ‖U‖₂:
    μ(σ) = 1 − max(M, 0)·σ²   (strong convexity, positive while M·σ² < 1)
    L(σ) = 1 − min(m, 0)·σ²   (Lipschitz constant of ∇f)
κ = L/μ, Nesterov's constant momentum (√κ − 1)/(√κ + 1) (the papers' (√L − √μ)/(√L + √μ)) and
Polyak's heavy-ball momentum ((√κ − 1)/(√κ + 1))².

m and M are exact where that is easy (constant branches, one-sided values at branch points,
critical points at rational x, simple rationals matched to 30 digits at x = ±10⁴⁰) and numeric
otherwise (grid + refinement, mpmath).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise

import mpmath
import sympy as sp

from derive.symbolic import identity, pieces
from derive.symbolic.numeric_eval import mp_function
from derive.symbolic.pieces import Cell
from derive.symbolic.symbols import x
from derive.symbolic.timelimit import TIME_LIMIT, budget_spent, time_limit

DPS = 30


@dataclass(frozen=True)
class Bound:
    """A value of Φ′ (infimum or supremum): float, plus the exact SymPy value when known."""

    value: float
    exact: sp.Expr | None
    why: str = ""  # why an unknown bound is unknown, when it is not the usual reason

    @property
    def known(self) -> bool:
        return not math.isnan(self.value)

    def text(self) -> str:
        if not self.known:
            return "unknown"
        if self.exact is not None:
            return str(self.exact)
        return (
            f"{self.value:.6g}"
            if math.isfinite(self.value)
            else ("oo" if self.value > 0 else "-oo")
        )


@dataclass(frozen=True)
class Smoothness:
    m: Bound  # inf Φ′
    M: Bound  # sup Φ′
    sigma: float  # ‖U‖₂ used
    sigma_rule: str  # how sigma was chosen, e.g. "sigma^2 = 1/(2M)"
    mu: float
    L: float
    kappa: float | None  # None when μ ≤ 0 (not strongly convex at this σ)
    nesterov: float | None
    heavy_ball: float | None
    parameters: str = ""  # parameter values used, as text

    def line(self) -> str:
        """One readable line for text and markdown output."""
        where = f" at {self.parameters}" if self.parameters else ""
        head = f"Phi' in [{self.m.text()}, {self.M.text()}]{where}"
        if not (self.m.known and self.M.known):
            if self.m.why or self.M.why:
                return f"Phi' range {self.m.why or self.M.why}{where}; mu, L and kappa unknown"
            return f"Phi' range unknown{where} (the numeric analysis could not finish); mu, L and kappa unknown"
        if self.kappa is None:
            if not math.isfinite(self.M.value):
                return (
                    f"{head}; Phi' is unbounded above: f is not strongly convex for any sigma > 0"
                )
            return f"{head}; at sigma = {self.sigma:.4g}: mu = {self.mu:.4g} <= 0, f is not strongly convex"
        rule = self.sigma_rule
        if "M" in rule:
            rule += f", M = sup Phi' = {self.M.text()}"
        return (
            f"{head}; at sigma = ||U||_2 = {self.sigma:.4g} ({rule}): mu = {self.mu:.4g}, "
            f"L = {self.L:.4g}, kappa = {self.kappa:.4g}, Nesterov momentum {self.nesterov:.4g}, "
            f"heavy-ball momentum {self.heavy_ball:.4g}"
        )


def _candidates(cell: Cell, d: sp.Expr) -> list[Bound]:
    """Values of Φ′ on one cell that can be extreme: constants, ends, limits, critical points."""
    if not d.has(x):
        return [Bound(float(d), d)]
    found: list[Bound] = []
    func = mp_function(d)
    for end, side in ((cell.lo, "+"), (cell.hi, "-")):
        if end.is_infinite:
            found.append(_tail(func, 1 if end > 0 else -1))
        else:
            value = identity.one_sided(d, end, side)
            found.append(Bound(float(value), value))
    dd = mp_function(sp.diff(d, x))
    lo = (
        float(cell.lo)
        if not cell.lo.is_infinite
        else (float(cell.hi) if not cell.hi.is_infinite else 0.0) - 60
    )
    hi = (
        float(cell.hi)
        if not cell.hi.is_infinite
        else (float(cell.lo) if not cell.lo.is_infinite else 0.0) + 60
    )
    grid = [lo + (hi - lo) * k / 600 for k in range(601)]
    with mpmath.workdps(DPS):
        values = [func(mpmath.mpf(g)) for g in grid]
        for k in range(1, len(grid) - 1):
            is_max = values[k] >= values[k - 1] and values[k] >= values[k + 1]
            is_min = values[k] <= values[k - 1] and values[k] <= values[k + 1]
            if not (is_max or is_min) or values[k - 1] == values[k] == values[k + 1]:
                continue
            try:
                root = mpmath.findroot(
                    dd, (mpmath.mpf(grid[k - 1]), mpmath.mpf(grid[k + 1])), solver="anderson"
                )
            except (ValueError, ZeroDivisionError):
                root = mpmath.mpf(grid[k])
            if not cell.contains(float(root)):
                root = mpmath.mpf(grid[k])
            found.append(_critical_value(d, root, func))
        found += [Bound(float(v), None) for v in values]
    return found


def _tail(func, direction: int) -> Bound:
    """Φ′ towards ±∞: unbounded if it keeps growing, else its value at 10⁴⁰ (a simple rational when
    it agrees with one to 30 digits, e.g. the 0 of 1/(1 + 10⁴⁰)²)."""
    with mpmath.workdps(DPS + 20):
        near, far = (
            func(mpmath.mpf(direction * 1000)),
            func(mpmath.mpf(direction) * mpmath.mpf(10) ** 40),
        )
        if not mpmath.isfinite(far) or abs(far) > 10 * abs(near) + 1:
            return Bound(
                math.copysign(math.inf, float(far)) if mpmath.isfinite(far) else math.inf, None
            )
        if abs(far) < mpmath.mpf(10) ** -30:
            return Bound(0.0, sp.S.Zero)
        guess = Fraction(float(far)).limit_denominator(1000)
        if abs(far - mpmath.mpf(guess.numerator) / guess.denominator) < mpmath.mpf(10) ** -30:
            exact = sp.Rational(guess.numerator, guess.denominator)
            return Bound(float(exact), exact)
        return Bound(float(far), None)


def _critical_value(d: sp.Expr, root, func) -> Bound:
    """Φ′ at a critical point; exact when the point is a simple rational with Φ″ = 0 exactly."""
    guess = sp.Rational(round(float(root) * 1000), 1000)
    if abs(float(root) - float(guess)) < 1e-20 and identity.is_zero(sp.diff(d, x).subs(x, guess)):
        exact = sp.simplify(d.subs(x, guess))
        return Bound(float(exact), exact)
    return Bound(float(func(root)), None)


UNKNOWN = Bound(math.nan, None)
STOPPED = Bound(math.nan, None, TIME_LIMIT)  # the time budget ran out first
ANALYSIS_SECONDS = 60.0
# What evaluating Φ′ far out can raise (exp(exp(x)) at 10⁴⁰ overflows mpmath and float()).
_NUMERIC_ERRORS = (ArithmeticError, ValueError, TypeError, MemoryError, RecursionError)


def derivative_range(phi: sp.Expr) -> tuple[Bound, Bound]:
    """(inf Φ′, sup Φ′) over the real line (Φ with numeric parameter values); a jump of Φ makes
    the bound on its side infinite (∇f is then not Lipschitz).

    Analysis that cannot finish (an overflow or other numeric failure, or more than
    ANALYSIS_SECONDS) gives (UNKNOWN, UNKNOWN): reported as unknown, never a crash; (STOPPED,
    STOPPED) when the time budget (derive.symbolic.timelimit.budget) ran out first.
    """
    if budget_spent():
        return STOPPED, STOPPED
    try:
        with time_limit(ANALYSIS_SECONDS):
            return _derivative_range(phi)
    except _NUMERIC_ERRORS:
        return UNKNOWN, UNKNOWN
    return (STOPPED, STOPPED) if budget_spent() else (UNKNOWN, UNKNOWN)  # the time limit stopped it


def _derivative_range(phi: sp.Expr) -> tuple[Bound, Bound]:
    branching = pieces.split(phi)
    candidates: list[Bound] = []
    for cell in branching.cells:
        candidates += _candidates(cell, sp.diff(cell.expr, x))
    for left, right in pairwise(branching.cells):
        jump = sp.simplify(
            identity.one_sided(right.expr, left.hi, "+")
            - identity.one_sided(left.expr, left.hi, "-")
        )
        if jump != 0:  # Φ′ has a Dirac mass there: unbounded in the direction of the jump
            infinite = sp.oo if jump.is_positive else -sp.oo
            candidates.append(Bound(float(infinite), None))
    low = min(candidates, key=lambda b: (b.value, b.exact is None))
    high = max(candidates, key=lambda b: (b.value, b.exact is not None))
    return low, high


def from_range(m: Bound, M: Bound, sigma: float | None = None, parameters: str = "") -> Smoothness:
    """Hessian bounds, κ and momenta at ‖U‖₂ = sigma (default σ² = 1/(2M), or 1 when M ≤ 0)."""
    rule = "given"
    if not (m.known and M.known):
        sigma = 1.0 if sigma is None else sigma
        nan = math.nan
        return Smoothness(m, M, sigma, "sigma = 1", nan, nan, None, None, None, parameters)
    if sigma is None:
        if 0 < M.value < math.inf:
            sigma, rule = 1 / math.sqrt(2 * M.value), "sigma^2 = 1/(2M)"
        else:
            sigma, rule = 1.0, "sigma = 1"
    if sigma < 0 or not math.isfinite(sigma):
        raise ValueError("sigma must be a finite number >= 0")
    mu = 1 - max(M.value, 0.0) * sigma**2 if math.isfinite(M.value) else -math.inf
    L = 1 - min(m.value, 0.0) * sigma**2 if math.isfinite(m.value) else math.inf
    if mu <= 0 or not math.isfinite(L):
        return Smoothness(m, M, sigma, rule, mu, L, None, None, None, parameters)
    kappa = L / mu
    root = math.sqrt(kappa)
    nesterov = (root - 1) / (root + 1)
    return Smoothness(m, M, sigma, rule, mu, L, kappa, nesterov, nesterov**2, parameters)
