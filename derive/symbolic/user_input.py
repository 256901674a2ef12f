"""A user's Φ(x) from --expr (built-in activations may be called by name: softplus(x), x*sigmoid(x)):
parsed safely, then checked to be real, finite and continuous on ℝ
and small enough to verify numerically. Every failure is a one-line UserError."""

from __future__ import annotations

import random

import mpmath
import sympy as sp

from derive.errors import UserError
from derive.symbolic import catalog, pieces
from derive.symbolic.expr_parser import parse_expression
from derive.symbolic.numeric_eval import is_finite, is_real, mp_function
from derive.symbolic.symbols import x
from derive.symbolic.timelimit import time_limit

WHAT = "--expr"
MAX_PHI = 1e150  # |Φ| allowed on |x| ≤ 60 (the numeric proof goes out to |x| = 50)


def _check_magnitude(phi: sp.Expr) -> None:
    """In float64 first, so mpmath never attempts exp(exp(exp(60)))."""
    func = sp.lambdify([x], pieces.normalise(phi), modules="math")
    for k in range(-240, 241):
        point = k / 4
        try:
            value = func(point)
        except OverflowError:
            raise UserError(
                f"{WHAT}: Phi overflows at x = {point:g}; too large to verify numerically"
            ) from None
        except Exception:  # undefined points are reported by _check_values
            continue
        if not isinstance(value, complex) and abs(value) > MAX_PHI:
            raise UserError(f"{WHAT}: |Phi({point:g})| > 1e150; too large to verify numerically")


def _check_values(phi: sp.Expr, branching: pieces.Branching) -> None:
    func = mp_function(phi)
    rng = random.Random(7)
    with mpmath.workdps(30):
        for cell in branching.cells:
            for point in cell.samples(rng, 12, 1e-3, 10.0) + cell.far_points((30.0,)):
                try:
                    value = func(mpmath.mpf(point))
                except Exception:
                    raise UserError(f"{WHAT}: Phi is undefined at x = {point:.4g}") from None
                if not is_finite(value):
                    raise UserError(f"{WHAT}: Phi is not finite at x = {point:.4g}")
                if not is_real(value):
                    raise UserError(
                        f"{WHAT}: Phi is not real at x = {point:.4g} (it must be real on the whole real line)"
                    )


def _check_continuity(branching: pieces.Branching) -> None:
    """Singularities inside a branch (1/x, tan x) found by SymPy's continuous_domain (a search
    the time budget stops counts as none found: the numeric proof will see trouble)."""
    for cell in branching.cells:
        interval = sp.Interval.open(cell.lo, cell.hi)
        domain = interval
        try:
            with time_limit(None):  # within the time budget, if there is one
                domain = sp.calculus.util.continuous_domain(cell.expr, x, interval)
        except Exception:  # SymPy cannot tell: the numeric proof will see trouble
            continue
        if domain != interval:
            missing = interval - domain
            where = (
                f" (fails on {missing})" if len(str(missing)) <= 60 else " (it has singularities)"
            )
            raise UserError(f"{WHAT}: Phi is not continuous on the real line{where}")


def parse_user_phi(text: str) -> sp.Expr:
    """Φ(x) from user text (never evaluated as code), checked as described above."""
    phi = parse_expression(text, {"x": x}, functions=catalog.expression_functions(), what=WHAT)
    if phi.has(sp.I):
        raise UserError(f"{WHAT}: the expression is complex-valued")
    branching = pieces.split(phi, what=WHAT)
    _check_magnitude(phi)
    _check_values(phi, branching)
    _check_continuity(branching)
    return phi
