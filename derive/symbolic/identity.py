"""Exact symbolic tests: is an expression identically zero, one-sided values, reality on a cell."""

from __future__ import annotations

import sympy as sp

from derive.symbolic import screen
from derive.symbolic.pieces import Cell
from derive.symbolic.symbols import x
from derive.symbolic.timelimit import time_limit

_BAD = (sp.nan, sp.zoo, sp.oo, -sp.oo)


def is_zero(expr: sp.Expr, seconds: float = 20.0) -> bool:
    """True when SymPy proves `expr` ≡ 0 (after expand_func, with arg(z) written as atan where its
    half-plane is known: expand, cancel, cancel of the exp form, simplify, simplify of the exp
    form)."""
    if expr == 0:
        return True
    proved = False
    try:
        proved = _simplifies_to_zero(expr, seconds)
    except Exception:  # SymPy failing on odd input proves nothing
        return False
    return proved


def _principal_arg(z: sp.Expr) -> sp.Expr | None:
    """arg(z) as atan for a z in an open half-plane of the real line's x (None: unknown half).

    arg z = atan(Im z/Re z) for Re z > 0, and ±π/2 − atan(Re z/Im z) for ±Im z > 0."""
    re, im = sp.re(z), sp.im(z)
    if re.is_positive:
        return sp.atan(sp.cancel(im / re))
    if im.is_positive:
        return sp.pi / 2 - sp.atan(sp.cancel(re / im))
    if im.is_negative:
        return -sp.pi / 2 - sp.atan(sp.cancel(re / im))
    return None


def principal_args(expr: sp.Expr) -> sp.Expr:
    """Every arg(z) whose half-plane SymPy can decide, written with atan (the same function)."""
    if not expr.has(sp.arg):
        return expr

    def rewrite(e: sp.arg) -> sp.Expr:
        found = _principal_arg(e.args[0])
        return e if found is None else found

    return expr.replace(lambda e: isinstance(e, sp.arg), rewrite)


def _simplifies_to_zero(expr: sp.Expr, seconds: float) -> bool:
    proved = False
    with time_limit(seconds):
        expr = principal_args(sp.expand_func(expr))
        cheap = (
            (lambda e: e, sp.expand, sp.cancel, lambda e: sp.cancel(e.rewrite(sp.exp)))
            if not expr.has(sp.Piecewise)
            else (lambda e: e,)
        )
        for transform in (*cheap, sp.simplify, lambda e: sp.simplify(e.rewrite(sp.exp))):
            proved = proved or transform(expr) == 0
    return proved


def is_zero_on(expr: sp.Expr, cell: Cell, seconds: float = 20.0) -> bool:
    """`expr` ≡ 0 on the cell: refuted quickly by a numeric screen, else proved by is_zero."""
    if screen.zero(expr, cell) is False:
        return False
    return is_zero(expr, seconds)


def is_finite_value(value: sp.Expr) -> bool:
    return not value.has(*_BAD) and value.is_finite is not False


def one_sided(expr: sp.Expr, point: sp.Expr, side: str) -> sp.Expr:
    """lim expr as x → point from `side` ('-' or '+'); plain substitution when that is finite."""
    value = expr.subs(x, point)
    if is_finite_value(value):
        return sp.expand_func(value)
    result = sp.nan
    try:
        with time_limit(20.0):
            result = sp.limit(expr, x, point, side)
    except Exception:  # no limit found: callers treat nan as "not continuous"
        return sp.nan
    return result


def on_cell(expr: sp.Expr, cell: Cell) -> tuple[sp.Expr, sp.Symbol] | None:
    """`expr` with x written as (finite end ∓ y), y > 0, so SymPy knows the sign of x − end."""
    y = sp.Dummy("y", positive=True)
    if not cell.hi.is_infinite:
        return expr.subs(x, cell.hi - y), y
    if not cell.lo.is_infinite:
        return expr.subs(x, cell.lo + y), y
    return None


def from_cell(expr: sp.Expr, cell: Cell, y: sp.Symbol) -> sp.Expr:
    """Undo on_cell."""
    return expr.subs(y, cell.hi - x) if not cell.hi.is_infinite else expr.subs(y, x - cell.lo)


def real_on_cell(expr: sp.Expr, cell: Cell) -> bool | None:
    """Whether SymPy's assumptions decide that `expr` is real on the cell (None: undecided)."""
    moved = on_cell(expr, cell)
    target = moved[0] if moved is not None else expr
    result = None
    try:
        with time_limit(5.0):
            result = target.is_extended_real
    except Exception:
        return None
    return result


def real_logs(expr: sp.Expr, cell: Cell) -> sp.Expr | None:
    """Replace log(w) by log|w| (same derivative w′/w) and resolve |w| on the cell; None if unresolved."""
    if not expr.has(sp.log):
        return None
    moved = on_cell(expr, cell)
    if moved is None:
        return None
    body, y = moved
    body = body.replace(sp.log, lambda arg: sp.log(sp.Abs(arg)))
    if body.has(sp.Abs):
        return None
    return from_cell(body, cell, y)


def drop_imaginary_constants(expr: sp.Expr) -> sp.Expr | None:
    """Remove additive constants containing I (they do not change the derivative)."""
    terms = sp.Add.make_args(sp.expand(expr))
    kept = [term for term in terms if not (term.has(sp.I) and not term.has(x))]
    return sp.Add(*kept) if len(kept) != len(terms) else None
