"""The SymPy symbols shared by the symbolic core, created once so every module means the same x."""

from __future__ import annotations

import sympy as sp

#: The activation's argument. Real, so SymPy may use real-line identities.
x = sp.Symbol("x", real=True)
#: Integration variable of the numeric energy Ψ(x) = ∫₀ˣ Φ(t) dt.
t = sp.Symbol("t", real=True)
#: The papers' variable u = Uᵢᵀx (the printed formulas are written in it).
u = sp.Symbol("u", real=True)
#: Argument used in the readable energy and gradient strings (Ψ(s), Φ(s)).
s = sp.Symbol("s", real=True)
#: Activation parameters, positive so proofs hold for every admissible value.
alpha = sp.Symbol("alpha", positive=True)
a = sp.Symbol("a", positive=True)
#: The papers' arbitrary constant of integration.
C = sp.Symbol("C", real=True)

PARAMETERS: dict[str, sp.Symbol] = {"alpha": alpha, "a": a}
