"""The symbolic proof that ∇f = x − UΦ(Uᵀx) for f(x) = ‖x‖²/2 − Σᵢ Ψ(Uᵢᵀx).

Split so that no step simplifies one big expression:
  1. scalar identity Ψ′ − Φ ≡ 0 on every branch (expand_func + simplify);
  2. Ψ continuous at every branch point (one-sided limits), Φ continuous there too (so Ψ is
     differentiable at the branch points, with Ψ′ = Φ), Ψ real on every branch where SymPy can tell;
     inside a branch, the arguments of log and Li₂ stay off their branch cuts (so Ψ is continuous
     there), and Ψ(0) = 0;
  3. chain rule ∇Σᵢ Ψ(Uᵢᵀx) = UΨ′(Uᵀx) for an undefined Ψ and a general symbolic 3×3 U (exact),
     and Uᵀx = Ux for symmetric U (exact); shown once per process;
  4. the assembled f for a 2×2 symmetric U: differentiate, subtract x − UΦ(Ux), replace each
     Uᵢᵀx by a fresh symbol tᵢ, and simplify branch pair by branch pair.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import sympy as sp

from derive.symbolic import identity, pieces
from derive.symbolic.pieces import Branching, Cell
from derive.symbolic.printing import unicode
from derive.symbolic.symbols import x
from derive.symbolic.timelimit import TIME_LIMIT, budget_spent, time_limit

DERIVATIVE, REAL, CUTS, ORIGIN, CONTINUITY, PHI_CONTINUITY, CHAIN_RULE, SYMMETRIC, ASSEMBLED = (
    "derivative",
    "real",
    "branch-cuts",
    "origin",
    "continuity",
    "phi-continuity",
    "chain-rule",
    "symmetric",
    "assembled",
)
ORIGIN_CLAIM = "Psi(0) = 0"

ASSEMBLED_CLAIM = "assembled f with a symmetric 2x2 U: grad f - (x - U Phi(U x)) = 0"
FTC_CLAIM = (
    "Psi' = Phi by the fundamental theorem of calculus (Phi continuous; d/dx of the integral "
    "from 0 to x)"
)


def chain_rule_text(n: int) -> str:
    return f"chain rule: grad sum_i Psi(U_i^T x) = U Psi'(U^T x) for undefined Psi and a general {n}x{n} U"


def symmetric_text(n: int) -> str:
    return f"U^T x = U x for a symmetric {n}x{n} U"


@dataclass(frozen=True)
class Step:
    """One proof step: ok is True (proved), False (refuted or not proved) or None (SymPy cannot
    decide; the numeric proof must cover it)."""

    kind: str
    claim: str
    ok: bool | None
    detail: str = ""
    value: sp.Basic | None = None  # Psi' where it is wrong; (left, right) limits where Psi jumps
    cell: Cell | None = None  # the branch (of Phi, with Psi's expression) a step is about


@dataclass(frozen=True)
class SymbolicProof:
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        """No step refuted. Undecided steps (ok None) are left to the numeric proof; see `proved`."""
        return all(step.ok is not False for step in self.steps)

    @property
    def proved(self) -> bool:
        """Every step proved (none undecided, none refuted)."""
        return all(step.ok is True for step in self.steps)

    @property
    def undecided(self) -> list[Step]:
        return [s for s in self.steps if s.ok is None]

    def failures(self, kind: str | None = None) -> list[Step]:
        return [s for s in self.steps if s.ok is False and (kind is None or s.kind == kind)]


def interval_text(cell: Cell, var: str = "x") -> str:
    if cell.lo.is_infinite and cell.hi.is_infinite:
        return "all real " + var
    if cell.lo.is_infinite:
        return f"{var} < {cell.hi}"
    if cell.hi.is_infinite:
        return f"{var} > {cell.lo}"
    return f"{cell.lo} < {var} < {cell.hi}"


Claim = Callable[[sp.Matrix, Callable[[sp.Expr], sp.Expr], sp.Matrix], sp.Matrix]


def chain_rule_claim(U: sp.Matrix, phi: Callable[[sp.Expr], sp.Expr], args: sp.Matrix) -> sp.Matrix:
    """The right side the papers use: U Φ(Uᵀx), written with Φ for Ψ′ (args[i] = Uᵢᵀx)."""
    return U * sp.Matrix([phi(args[i]) for i in range(U.rows)])


def chain_rule_step(n: int = 3, claim: Claim = chain_rule_claim) -> Step:
    """∇ Σᵢ Ψ(Uᵢᵀx) = claim(U, Φ, Uᵀx) for an undefined Ψ (Ψ′ = Φ) and a general n×n U, exactly.

    The gradient is computed here by differentiation; `claim` only states the right side, so a
    wrong claim (tests pass Uᵀ for U, say) is refuted: the step never compares a side with itself.
    """
    psi, phi = sp.Function("Psi"), sp.Function("Phi")
    U = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"U{i + 1}{j + 1}", real=True))
    X = sp.Matrix(sp.symbols(f"x1:{n + 1}", real=True))
    args = U.T * X  # args[i] = U_i^T x (U_i = column i)
    total = sum(psi(args[i]) for i in range(n))
    grad = sp.Matrix([sp.diff(total, xk) for xk in X])

    def as_phi(expr, variables, point):
        is_psi_prime = isinstance(expr, sp.Derivative) and expr == sp.Derivative(
            psi(variables[0]), variables[0]
        )
        return phi(*point) if is_psi_prime else sp.Subs(expr, variables, point)

    grad = grad.replace(sp.Subs, as_phi)
    ok = (grad - claim(U, phi, args)).expand() == sp.zeros(n, 1)
    return Step(
        CHAIN_RULE,
        chain_rule_text(n),
        ok,
    )


def symmetric_step(n: int = 3, symmetric: bool = True) -> Step:
    """Uᵀx = Ux for a symmetric n×n U (`symmetric=False` uses a general U: tests expect a refutation)."""
    U = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"U{i + 1}{j + 1}", real=True))
    X = sp.Matrix(sp.symbols(f"x1:{n + 1}", real=True))
    if symmetric:
        U = U.subs({U[j, i]: U[i, j] for i in range(n) for j in range(i + 1, n)})
    ok = ((U.T - U) * X).expand() == sp.zeros(n, 1)
    return Step(SYMMETRIC, symmetric_text(n), ok)


@functools.cache
def chain_rule_lemma(n: int = 3) -> tuple[Step, Step]:
    """∇ Σᵢ Ψ(Uᵢᵀx) = UΨ′(Uᵀx) for undefined Ψ and general n×n U; and Uᵀx = Ux for symmetric U."""
    return chain_rule_step(n), symmetric_step(n)


def _branch_at(expr: sp.Piecewise, cells: dict[sp.Symbol, Cell]) -> sp.Expr:
    """The branch of a Piecewise in one variable tᵢ that holds inside the cell chosen for tᵢ."""
    free = set().union(*(cond.free_symbols for _, cond in expr.args)) & set(cells)
    if len(free) > 1:
        raise ValueError("Piecewise condition in more than one argument")
    if not free:
        return expr.args[0].expr if expr.args[0].cond is sp.true else expr
    (sym,) = free
    probe = cells[sym].interior_point()
    for branch, cond in expr.args:
        if cond.subs(sym, probe) is sp.true:
            return branch
    raise ValueError("no branch holds")


def _linear_to_symbols(
    expr: sp.Basic, xs: tuple[sp.Symbol, ...], forms: list[tuple[sp.Symbol, tuple]]
) -> sp.Basic:
    """Replace every linear combination k·Uᵢᵀx (+ constants) inside `expr` by k·tᵢ.

    `forms` pairs each tᵢ with the coefficients of Uᵢᵀx; a combination c·x is k·Uᵢᵀx when c is
    parallel to those coefficients. Terms SymPy distributed (exp(−p·x1 − q·x2)) are caught too."""

    def linear_part(e: sp.Basic) -> bool:
        return e.is_Add and any(term.has(*xs) for term in e.args)

    def rewrite(e: sp.Add) -> sp.Basic:
        coefficients = dict.fromkeys(xs, sp.S.Zero)
        rest = []
        for term in e.args:
            if not term.has(*xs):
                rest.append(term)
                continue
            coefficient, variable = term.as_independent(*xs, as_Add=False)
            if variable not in coefficients:
                return e
            coefficients[variable] += coefficient
        c = [coefficients[v] for v in xs]
        for symbol, u in forms:
            pivot = next((k for k, value in enumerate(u) if value != 0), None)
            if pivot is None:
                continue
            scale = c[pivot] / u[pivot]
            if all(sp.expand(ck - scale * uk) == 0 for ck, uk in zip(c, u, strict=True)):
                return sp.cancel(scale) * symbol + sp.Add(*rest)
        return e

    return expr.replace(linear_part, rewrite)


def assembled_check(
    phi: sp.Expr, psi: sp.Expr, phi_branching: Branching, psi_branching: Branching
) -> Step:
    """∇f − (x − UΦ(Ux)) ≡ 0 for f built from Ψ with a symmetric 2×2 U, branch pair by branch pair.

    After differentiating, each Uᵢᵀx = (Ux)ᵢ (and multiples of it) is replaced by a fresh symbol
    tᵢ; the generalised difference must be free of x and identically 0."""
    psi = pieces.normalise(psi)
    p, q, r = sp.symbols("p q r", real=True)
    x1, x2 = sp.symbols("x1 x2", real=True)
    t1, t2 = sp.symbols("t1 t2", real=True)
    U = sp.Matrix([[p, q], [q, r]])
    X = sp.Matrix([x1, x2])
    args = U.T * X
    f = (x1**2 + x2**2) / 2 - psi.subs(x, args[0]) - psi.subs(x, args[1])
    grad = sp.Matrix([sp.diff(f, x1), sp.diff(f, x2)])
    expected = X - U * sp.Matrix([phi.subs(x, (U * X)[0]), phi.subs(x, (U * X)[1])])
    forms = [(t1, (p, q)), (t2, (q, r))]
    difference = (
        (grad - expected).doit().applyfunc(lambda e: _linear_to_symbols(e, (x1, x2), forms))
    )
    claim = ASSEMBLED_CLAIM
    if difference.has(x1, x2):
        return Step(
            ASSEMBLED, claim, None, "U_i^T x could not be separated (the split proof still stands)"
        )
    cells = pieces.refine(phi_branching, psi_branching)
    ok = True
    with time_limit(30.0) as limit:
        for c1, _ in cells:
            for c2, _ in cells:
                chosen = {t1: c1, t2: c2}
                try:
                    branch = difference.replace(
                        lambda e: isinstance(e, sp.Piecewise),
                        lambda e, chosen=chosen: _branch_at(e, chosen),
                    )
                except ValueError:
                    return Step(ASSEMBLED, claim, None, "branch conditions not separable")
                for component in branch:
                    if identity.is_zero(component):
                        continue
                    if _clearly_nonzero(component, chosen):
                        return Step(ASSEMBLED, claim, False, "a component is not 0")
                    ok = None
    if ok is None:
        return Step(
            ASSEMBLED,
            claim,
            None,
            "SymPy could not simplify it to 0; numerically 0 (the split proof stands)",
        )
    if limit.expired:
        return Step(
            ASSEMBLED, claim, None, "not finished within 30 s (the split proof still stands)"
        )
    return Step(ASSEMBLED, claim, True)


def _clearly_nonzero(expr: sp.Expr, cells: dict[sp.Symbol, Cell]) -> bool:
    """`expr` evaluates to a clearly non-zero number with the tᵢ inside their cells and the other
    symbols at fixed rationals (a refutation; zero values prove nothing)."""
    values = {
        sym: cell.interior_point()
        + sp.Rational(1, 7) * (1 if cell.hi.is_infinite else -1 if cell.lo.is_infinite else 0)
        for sym, cell in cells.items()
    }
    others = sorted(expr.free_symbols - set(values), key=str)
    values.update({sym: sp.Rational(3 + k, 5 + 2 * k) for k, sym in enumerate(others)})
    try:
        number = sp.N(expr.subs(values), 30)
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    return bool(number.is_number and number.is_finite and abs(number) > 1e-15)


def _readable(expr: sp.Expr) -> sp.Expr:
    """The smaller of `expr` and its simplification (for reporting a wrong derivative)."""
    simpler = None
    with time_limit(10.0):
        simpler = sp.simplify(expr)
    awkward = simpler is not None and any(
        isinstance(f.args[0], sp.Pow) and f.args[0].exp.has(x) for f in simpler.atoms(sp.log)
    )
    if simpler is None or awkward or sp.count_ops(simpler) >= sp.count_ops(expr):
        return expr
    return simpler


def _within_budget(
    kind: str, claim: str, compute: Callable[[], Step], cell: Cell | None = None
) -> Step:
    """compute() within what is left of the time budget; a step it stops is undecided (TIME_LIMIT).

    Outside a budget this is compute() itself."""
    if budget_spent():
        return Step(kind, claim, None, TIME_LIMIT, cell=cell)
    step = None
    with time_limit(None) as stopped:
        step = compute()
    if stopped.expired or step is None:
        return Step(kind, claim, None, TIME_LIMIT, cell=cell)
    return step


def _derivative_step(phi_cell: Cell, psi_cell: Cell, claim: str) -> Step:
    difference = sp.diff(psi_cell.expr, x) - phi_cell.expr
    proved = identity.is_zero_on(difference, phi_cell)
    derivative = None if proved else _readable(sp.expand_func(sp.diff(psi_cell.expr, x)))
    detail = "" if proved else f"Psi' = {derivative}"
    return Step(DERIVATIVE, claim, proved, detail, derivative, psi_cell)


def _off_cut(function: sp.Expr, cell: Cell) -> str | None:
    """Why the argument z of log (cut (−∞, 0]) or Li₂ (cut [1, ∞)) avoids the cut for every x in
    the cell, as SymPy proves it: "Im z ≠ 0", "z > 0" (log) or "z < 1" (Li₂); None if unproved."""
    moved = identity.on_cell(function.args[-1], cell)
    z = moved[0] if moved is not None else function.args[-1]
    if sp.im(z).is_nonzero:
        return "Im z ≠ 0"
    if isinstance(function, sp.log) and z.is_extended_real and z.is_positive:
        return "z > 0"
    if isinstance(function, sp.polylog) and z.is_extended_real and (1 - z).is_positive:
        return "z < 1"
    return None


def _cuts_step(psi_cell: Cell, claim: str) -> Step:
    """The arguments of log and Li₂ on the cell stay off the cuts, so Ψ is analytic there."""
    reasons: dict[str, list[str]] = {}
    proved = True
    for function in sorted(psi_cell.expr.atoms(sp.log, sp.polylog), key=str):
        why = _off_cut(function, psi_cell) or "undecided"
        proved = proved and why != "undecided"
        reasons.setdefault(why, []).append(unicode(function.args[-1]))
    detail = "; ".join(f"{why} for z = {', '.join(zs)}" for why, zs in reasons.items())
    return Step(CUTS, claim, True if proved else None, detail, cell=psi_cell)


def _origin_step(psi: sp.Expr) -> Step:
    value = sp.expand_func(psi.subs(x, 0))
    proved = identity.is_zero(value)
    return Step(ORIGIN, ORIGIN_CLAIM, proved, "" if proved else f"Psi(0) = {value}")


def _phi_continuity_step(left: Cell, right: Cell, claim: str) -> Step:
    point = left.hi
    jump = sp.simplify(
        identity.one_sided(right.expr, point, "+") - identity.one_sided(left.expr, point, "-")
    )
    detail = (
        "" if jump == 0 else f"Phi jumps by {jump}: f is not differentiable where U_i^T x = {point}"
    )
    return Step(PHI_CONTINUITY, claim, jump == 0, detail)


def _continuity_step(left: Cell, right: Cell, claim: str) -> Step:
    point = left.hi
    left_value = sp.simplify(identity.one_sided(left.expr, point, "-"))
    right_value = sp.simplify(identity.one_sided(right.expr, point, "+"))
    jump = sp.simplify(right_value - left_value)
    detail = "" if jump == 0 else f"left limit {left_value}, right limit {right_value}"
    return Step(CONTINUITY, claim, jump == 0, detail, sp.Tuple(left_value, right_value))


def prove(
    phi: sp.Expr,
    psi: sp.Expr,
    *,
    var: str = "x",
    assembled: bool = True,
    normalised: bool = True,
) -> SymbolicProof:
    """All symbolic steps for Φ = `phi` and Ψ = `psi` (closed form, Piecewise allowed, or ∫₀ˣ Φ).

    `normalised`: also prove Ψ(0) = 0 (derived energies; the papers' formulas have any constant).

    Within a time budget (derive.symbolic.timelimit.budget) a step that does not finish in what is
    left of it is undecided, with detail TIME_LIMIT."""
    phi_branching = pieces.split(phi)
    steps: list[Step] = []
    numeric = psi.has(sp.Integral)
    psi_branching = phi_branching if numeric else pieces.split(psi, what="energy Psi")
    refined = pieces.refine(phi_branching, psi_branching)
    if numeric:
        steps.append(_within_budget(DERIVATIVE, FTC_CLAIM, lambda: _ftc_step(phi, psi)))
    else:
        for phi_cell, psi_cell in refined:
            steps += _cell_steps(phi_cell, psi_cell, interval_text(phi_cell, var))
    if normalised and not numeric:
        steps.append(_within_budget(ORIGIN, ORIGIN_CLAIM, lambda: _origin_step(psi)))
    for left, right in pairwise(refined):
        steps += _branch_point_steps(left, right, var, numeric)
    steps.extend(_chain_rule_steps())
    if assembled:
        steps.append(_assembled_step(phi, psi, phi_branching, psi_branching, steps))
    return SymbolicProof(tuple(steps))


def _ftc_step(phi: sp.Expr, psi: sp.Expr) -> Step:
    """Ψ = ∫₀ˣ Φ: d/dx of the integral minus Φ is 0 (the fundamental theorem of calculus)."""
    difference = pieces.normalise(sp.diff(psi, x).doit() - phi)
    return Step(DERIVATIVE, FTC_CLAIM, identity.is_zero(difference))


def _cell_steps(phi_cell: Cell, psi_cell: Cell, where: str) -> list[Step]:
    """On one cell of a closed-form Ψ: Ψ′ − Φ ≡ 0, Ψ real and, with log or Li₂, off the cuts."""
    claim = f"Psi' - Phi = 0 identically on {where}"
    steps = [
        _within_budget(
            DERIVATIVE,
            claim,
            lambda c=claim: _derivative_step(phi_cell, psi_cell, c),
            psi_cell,
        )
    ]
    claim = f"Psi real on {where}"
    steps.append(
        _within_budget(
            REAL,
            claim,
            lambda c=claim: Step(
                REAL, c, identity.real_on_cell(psi_cell.expr, psi_cell), cell=psi_cell
            ),
            psi_cell,
        )
    )
    if psi_cell.expr.has(sp.log, sp.polylog):
        claim = f"log and Li2 arguments off their branch cuts on {where} (Psi continuous there)"
        steps.append(_within_budget(CUTS, claim, lambda c=claim: _cuts_step(psi_cell, c), psi_cell))
    return steps


def _branch_point_steps(
    left: tuple[Cell, Cell], right: tuple[Cell, Cell], var: str, numeric: bool
) -> list[Step]:
    """Where two cells meet: Φ continuous and, for a closed-form Ψ, Ψ continuous."""
    (left_phi, left_psi), (right_phi, right_psi) = left, right
    point = left_phi.hi
    claim = f"Phi continuous at {var} = {point} (so Psi' = Phi there too)"
    steps = [
        _within_budget(
            PHI_CONTINUITY,
            claim,
            lambda c=claim: _phi_continuity_step(left_phi, right_phi, c),
        )
    ]
    if not numeric:
        claim = f"Psi continuous at {var} = {point}"
        steps.append(
            _within_budget(
                CONTINUITY,
                claim,
                lambda c=claim: _continuity_step(left_psi, right_psi, c),
            )
        )
    return steps


def _assembled_step(
    phi: sp.Expr,
    psi: sp.Expr,
    phi_branching: Branching,
    psi_branching: Branching,
    steps: list[Step],
) -> Step:
    """∇f of the assembled f for a symmetric 2×2 U; failed outright when Ψ′ = Φ already failed."""
    if any(step.kind == DERIVATIVE and step.ok is False for step in steps):
        return Step(ASSEMBLED, ASSEMBLED_CLAIM, False, "fails with the scalar identity Psi' = Phi")
    return _within_budget(
        ASSEMBLED,
        ASSEMBLED_CLAIM,
        lambda: assembled_check(pieces.normalise(phi), psi, phi_branching, psi_branching),
    )


def _chain_rule_steps() -> tuple[Step, Step]:
    """chain_rule_lemma(3) (exact and fast, computed once per process), within the budget."""
    chain = _within_budget(CHAIN_RULE, chain_rule_text(3), lambda: chain_rule_lemma(3)[0])
    symmetric = _within_budget(SYMMETRIC, symmetric_text(3), lambda: chain_rule_lemma(3)[1])
    return chain, symmetric
