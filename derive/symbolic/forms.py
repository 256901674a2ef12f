"""Choose how to write a verified antiderivative: equivalent forms, ranked by numeric stability
first (a form that loses all digits at x = −50, like x − log(tanh x + 1), is never chosen when a
stable one verifies), then by size. Every alternative is re-verified before it can be chosen."""

from __future__ import annotations

import mpmath
import sympy as sp

from derive.symbolic import identity, screen
from derive.symbolic.integrate import derivative_matches
from derive.symbolic.numeric_eval import is_finite, is_real, mp_function
from derive.symbolic.pieces import Cell
from derive.symbolic.symbols import x
from derive.symbolic.timelimit import time_limit

_SPECIAL = (sp.polylog, sp.erf, sp.erfc, sp.Integral, sp.Piecewise)


def _log_exp_form(expr: sp.Expr) -> sp.Expr:
    """log(exp(G)) simplified through its exponential form (e.g. log(cosh x) for tanh); valid for real G."""
    return sp.log(sp.exptrigsimp(sp.simplify(sp.exp(expr.rewrite(sp.exp)))))


def alternatives(expr: sp.Expr, limit: float | None) -> list[sp.Expr]:
    """Candidate rewrites of `expr` (not yet verified), without duplicates. A real form with Re/Im
    of complex dilogarithms (partial fractions over complex roots) is only factored: simplify
    spends seconds there and only makes it longer."""
    found = []
    rewrites = [lambda e: sp.factor_terms(e, sign=False)]
    if not expr.has(sp.re, sp.im):
        rewrites.append(sp.simplify)
    if expr.has(sp.log) and not expr.has(*_SPECIAL):
        rewrites.append(_log_exp_form)
    for rewrite in rewrites:
        try:
            with time_limit(limit):
                found.append(rewrite(expr))
        except Exception:  # a rewrite SymPy cannot do is simply not offered
            continue
    found.append(expr)
    unique: list[sp.Expr] = []
    for form in found:
        if form not in unique:
            unique.append(form)
    return unique


def is_stable(expr: sp.Expr, cell: Cell) -> bool:
    """Finite, real and the same to 20 digits at 30 and 60 digits, at far points of the cell."""
    func = mp_function(expr, screen.sample_values(expr))
    probes = cell.far_points((30.0, 200.0)) or [float(cell.interior_point())]
    for point in probes:
        values = []
        for dps in (30, 60):
            with mpmath.workdps(dps):
                try:
                    value = func(mpmath.mpf(point))
                except (ValueError, ZeroDivisionError, TypeError, OverflowError):
                    return False
                if not is_finite(value) or not is_real(value):
                    return False
                values.append(value)
        with mpmath.workdps(60):
            if abs(values[0] - values[1]) > mpmath.mpf(10) ** -20 * max(1, abs(values[1])):
                return False
    return True


def same_constant(candidate: sp.Expr, reference: sp.Expr, cell: Cell) -> bool:
    """Equal values at the cell's point nearest 0 (with equal derivatives: equal functions)."""
    point = cell.anchor()
    side = "+" if point == cell.lo else "-"
    try:
        difference = identity.one_sided(candidate, point, side) - identity.one_sided(
            reference, point, side
        )
    except (NotImplementedError, ValueError):
        return False
    return identity.is_zero(difference)


def best_form(expr: sp.Expr, g: sp.Expr, cell: Cell, limit: float | None) -> sp.Expr:
    """The most stable, then smallest, verified form of the antiderivative `expr` of g on the cell
    (ties go to the factored form, then the simplified one)."""
    verified = []
    for form in alternatives(expr, limit):
        if form == expr:
            verified.append(form)
            continue
        if form.has(sp.Integral) or not form.has(x) and expr.has(x):
            continue
        if (
            derivative_matches(form, g, cell)
            and same_constant(form, expr, cell)
            and identity.real_on_cell(form, cell) is not False
            and screen.real(form, cell)
        ):
            verified.append(form)
    return min(
        verified, key=lambda form: (not is_stable(form, cell), sp.count_ops(form), len(str(form)))
    )
