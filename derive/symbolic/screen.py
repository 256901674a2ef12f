"""Quick numeric screens (30 digits, a few points of a cell) that let exact checks skip hopeless work.

A screen can only refute (a clearly non-zero difference, a complex value); proofs stay symbolic.
"""

from __future__ import annotations

import random

import mpmath
import sympy as sp

from derive.symbolic.numeric_eval import is_finite, is_real, mp_function
from derive.symbolic.pieces import Cell
from derive.symbolic.symbols import x

DPS = 30
_ERRORS = (Exception,)  # any failure to evaluate means "unknown", never "proved"


def sample_values(expr: sp.Expr) -> dict[sp.Symbol, sp.Expr]:
    """Exact sample values (7/10, 1, 13/10, ...) for the parameters of `expr`."""
    others = sorted(expr.free_symbols - {x}, key=str)
    return {sym: sp.Rational(7, 10) + k * sp.Rational(3, 10) for k, sym in enumerate(others)}


def points(cell: Cell) -> list[float]:
    rng = random.Random(20240601)
    return cell.samples(rng, 3, 1e-2, 4.0) + cell.far_points((12.0,))


def _values(expr: sp.Expr, cell: Cell):
    func = mp_function(expr, sample_values(expr))
    with mpmath.workdps(DPS):
        for point in points(cell):
            try:
                yield func(mpmath.mpf(point))
            except _ERRORS:
                yield None


def real(expr: sp.Expr, cell: Cell) -> bool:
    """`expr` is finite and real at a few points of the cell."""
    with mpmath.workdps(DPS):
        return all(v is not None and is_finite(v) and is_real(v) for v in _values(expr, cell))


def zero(expr: sp.Expr, cell: Cell) -> bool | None:
    """False when `expr` is clearly non-zero on the cell, True when it looks zero, None if unknown."""
    with mpmath.workdps(DPS):
        for value in _values(expr, cell):
            if value is None or not is_finite(value):
                return None
            if not isinstance(value, (mpmath.mpf, mpmath.mpc)):
                value = mpmath.mpmathify(value)
            if abs(value) > mpmath.mpf(10) ** -15:
                return False
    return True
