"""The shared SymPy vocabulary for iterations: vectors, the matrix U, ∇f and T.

Vectors are noncommutative, scalars commutative, so `U**-1 * (c*U*z)` cancels to `c*z` and
`U*T(w)` never silently becomes `T(w)*U`. A state is an applied undefined function of the
iteration index: `x(k)`, `x(k - 1)`, `y(j)`.
"""

from __future__ import annotations

import sympy as sp

k = sp.Symbol("k", integer=True, nonnegative=True)
"""The iteration (layer) index."""

j = sp.Symbol("j", integer=True, nonnegative=True)
"""The summation index of all-history terms."""

U = sp.Symbol("U", commutative=False)
"""U = √W: symmetric positive definite, so ∇f(x) = x − UΦ(Ux) (SCIS (9))."""

GRAD = sp.Function("grad_f", commutative=False)
"""∇f, the gradient of the energy f(x) = ‖x‖²/2 − Σᵢ Ψ(Uᵢᵀx) (SCIS (8))."""

T = sp.Function("T", commutative=False)
"""The layer map T(z) = Φ(Wz) in z-space (the papers' engineering notation, appendix C)."""

INPUT = sp.Symbol("u", commutative=False)
"""The injected input u, the z-image of the linear term b = Uu of the energy
F(x) = f(x) − ⟨b, x⟩, whose gradient is ∇F(x) = ∇f(x) − b; constant over the iterations."""

INNER = sp.Function("inner")
"""⟨a, b⟩, used only inside argmin objectives."""

SQNORM = sp.Function("sqnorm")
"""‖a‖², used only inside argmin objectives."""


def vector(name: str) -> sp.FunctionClass:
    """A vector-valued sequence (a state stream) named `name`: `vector("x")(k)` is x_k."""
    return sp.Function(name, commutative=False)


def scalar(name: str) -> sp.Symbol:
    """A real scalar coefficient such as β."""
    return sp.Symbol(name, real=True)


def is_state(expr: sp.Basic) -> bool:
    """True for an applied vector stream such as x(k) (not ∇f, T or a scalar function)."""
    return (
        isinstance(expr, sp.core.function.AppliedUndef)
        and not expr.is_commutative
        and expr.func not in (GRAD, T, INNER, SQNORM)
    )
