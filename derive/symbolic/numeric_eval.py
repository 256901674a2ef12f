"""Evaluate SymPy expressions with mpmath at high precision (lambdify, and quadrature for ∫₀ˣ Φ)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mpmath
import sympy as sp

from derive.symbolic.symbols import x

MpFunction = Callable[[mpmath.mpf], mpmath.mpf | mpmath.mpc]


def polylog(order, z):
    """mpmath.polylog, with Li₂ of a negative real moved away from |z| ≈ 1 (where mpmath's series
    is slow) by the standard identities: inversion Li₂(z) + Li₂(1/z) = −π²/6 − ½ln²(−z) for z < −1,
    then Landen Li₂(z) = −Li₂(z/(z−1)) − ½ln²(1−z), which lands in [0, 1/2]."""
    if order == 2 and not isinstance(z, mpmath.mpc) and z < 0:
        z = mpmath.mpf(z)
        if z < -1:
            return -(mpmath.pi**2) / 6 - mpmath.log(-z) ** 2 / 2 - polylog(2, 1 / z)
        return -mpmath.polylog(2, z / (z - 1)) - mpmath.log(1 - z) ** 2 / 2
    return mpmath.polylog(order, z)


def mp_function(expr: sp.Expr, values: dict[sp.Symbol, sp.Expr] | None = None) -> MpFunction:
    """An mpmath function of x for `expr`, with parameters replaced by exact `values`.

    Real and imaginary parts (Re Li₂(w) + Im Li₂(w)) share one evaluation of their argument
    (common subexpressions), which halves the cost of complex dilogarithms."""
    if values:
        expr = expr.subs(values)
    shared = expr.has(sp.re, sp.im)
    return sp.lambdify([x], expr, modules=[{"polylog": polylog}, "mpmath"], cse=shared)


def integral_function(phi: MpFunction, breakpoints: Sequence[float]) -> MpFunction:
    """Ψ(x) = ∫₀ˣ Φ(t) dt by mpmath quadrature, split at the branch points between 0 and x."""
    points = sorted(breakpoints)

    def psi(value):
        value = mpmath.mpf(value)
        inner = [p for p in points if min(0, value) < p < max(0, value)]
        path = [mpmath.mpf(0), *(inner if value > 0 else reversed(inner)), value]
        return mpmath.quad(phi, path)

    return psi


def is_real(value, scale=1) -> bool:
    """An mpmath value with no imaginary part beyond rounding."""
    if isinstance(value, mpmath.mpc):
        return abs(value.imag) <= mpmath.mpf(10) ** (-mpmath.mp.dps + 8) * max(1, abs(scale))
    return True


def is_finite(value) -> bool:
    return (
        bool(mpmath.isfinite(value))
        if not isinstance(value, mpmath.mpc)
        else bool(mpmath.isfinite(value.real) and mpmath.isfinite(value.imag))
    )
