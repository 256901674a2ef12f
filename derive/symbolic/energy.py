"""Ψ with Ψ′ = Φ: branch by branch, constants that keep Ψ continuous, normalised so Ψ(0) = 0.

When some branch has no closed form, Ψ is the exact numeric energy Ψ(x) = ∫₀ˣ Φ(t) dt, written
as `Integral(Φ(t), (t, 0, x))` and evaluated by mpmath quadrature. An unevaluated Integral
returned by SymPy is never passed off as a closed form.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sympy as sp

from derive.symbolic import identity
from derive.symbolic.forms import best_form
from derive.symbolic.integrate import Attempts, branch_antiderivative
from derive.symbolic.pieces import Branching
from derive.symbolic.symbols import t, x
from derive.symbolic.timelimit import budget_spent, time_limit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Energy:
    """The antiderivative Ψ of Φ (closed form, or the numeric integral)."""

    psi: sp.Expr
    closed_form: bool
    method: str
    branches: tuple[sp.Expr, ...] | None  # Ψ on each cell of Φ's branching (closed form only)
    attempts: tuple[str, ...]
    timed_out: bool = False  # the time limit ended the search for a closed form


def numeric_psi(phi: sp.Expr) -> sp.Expr:
    """Ψ(x) = ∫₀ˣ Φ(t) dt as an unevaluated SymPy Integral (sympify-able, honest definition)."""
    return sp.Integral(phi.subs(x, t), (t, 0, x))


def _constants(branching: Branching, antiderivatives: list[sp.Expr]) -> list[sp.Expr]:
    """Constants c_k making Σ (G_k + c_k) continuous with value 0 at x = 0."""
    cells = branching.cells
    home = next(k for k, cell in enumerate(cells) if cell.anchor() == 0)
    consts: list[sp.Expr] = [sp.S.Zero] * len(cells)
    side = "+" if cells[home].lo == 0 else "-"
    consts[home] = -identity.one_sided(antiderivatives[home], sp.S.Zero, side)
    for k in range(home + 1, len(cells)):
        point = cells[k].lo
        left = identity.one_sided(antiderivatives[k - 1], point, "-") + consts[k - 1]
        consts[k] = left - identity.one_sided(antiderivatives[k], point, "+")
    for k in range(home - 1, -1, -1):
        point = cells[k].hi
        right = identity.one_sided(antiderivatives[k + 1], point, "+") + consts[k + 1]
        consts[k] = right - identity.one_sided(antiderivatives[k], point, "-")
    return [sp.nsimplify(c) if c.is_Float else sp.simplify(c) for c in consts]


def derive_energy(phi: sp.Expr, branching: Branching, *, limit: float | None) -> Energy:
    """Find Ψ for Φ = `phi` (display form) split as `branching`; within a budget (timelimit),
    the numeric energy when the budget ends the search."""
    if budget_spent():
        return _numeric_energy(phi, Attempts(), timed_out=True)
    energy = None
    with time_limit(None) as stopped:
        energy = _derive_energy(phi, branching, limit)
    if stopped.expired or energy is None:
        return _numeric_energy(phi, Attempts(), timed_out=True)
    return energy


def _derive_energy(phi: sp.Expr, branching: Branching, limit: float | None) -> Energy:
    attempts = Attempts()
    found = []
    methods = []
    for cell in branching.cells:
        result = branch_antiderivative(cell.expr, cell, limit=limit, attempts=attempts)
        if result is None:
            log.debug("no closed form on (%s, %s): %s", cell.lo, cell.hi, "; ".join(attempts.log))
            return _numeric_energy(phi, attempts)
        found.append(result.expr)
        methods.append(result.method)
    consts = _constants(branching, found)
    if any(not identity.is_finite_value(c) for c in consts):
        attempts.add("no finite constants make the branches continuous")
        return _numeric_energy(phi, attempts)
    branches = []
    for cell, expr, const in zip(branching.cells, found, consts, strict=True):
        branches.append(best_form(expr + const, cell.expr, cell, limit))
    method = ", ".join(dict.fromkeys(methods))
    psi = branching.assemble(branches)
    return Energy(psi, True, method, tuple(branches), tuple(attempts.log))


def _numeric_energy(phi: sp.Expr, attempts: Attempts, *, timed_out: bool = False) -> Energy:
    """The exact numeric energy ∫₀ˣ Φ, used when no closed form passes the checks (or the time
    limit ended the search)."""
    why = (
        "the time limit ended the search for a closed form" if timed_out else "no closed form found"
    )
    return Energy(
        numeric_psi(phi), False, f"numeric quadrature ({why})", None, tuple(attempts.log), timed_out
    )
