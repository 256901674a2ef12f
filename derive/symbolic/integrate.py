"""Antiderivatives of one branch of Φ: a list of strategies, cheapest first.

Every candidate is accepted only after checks: no unevaluated Integral, G′ − g ≡ 0 proved by SymPy
(after a quick numeric screen), and G real on the branch's interval. A candidate that fails only
the reality check is repaired where that is sound (log w → log|w|, dropping imaginary constants;
neither changes the derivative) and checked again.

Strategies, in order: integration by parts for g = x·h(x) (needs ∫h and ∫∫h, found by the cheap
strategies only); substitution u = eˣ (then the dilogarithm rule or SymPy's integrate in u,
`expand_func` and exp_polar removal: polylog forms); SymPy's rule-based `manualintegrate`; for
g = x·R(eˣ) or R(eˣ) with R rational, partial fractions over the complex roots of R's denominator
(derive.symbolic.exp_rational: log and Li₂ of complex arguments, in real form); SymPy's full
`integrate`. Hopeless routes are skipped: substitution needs exp(x) in g and an integrand in u
that is rational, or rational times logs with real-rooted denominators (otherwise only complex
dilogarithms come out); inverse trigonometric functions of eˣ are not integrated again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import sympy as sp
from sympy.integrals.manualintegrate import manualintegrate

from derive.symbolic import exp_rational, identity, screen
from derive.symbolic.pieces import Cell
from derive.symbolic.symbols import x
from derive.symbolic.timelimit import time_limit


@dataclass
class Attempts:
    """What was tried for one branch, for logging and the 'no closed form' note."""

    log: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.log.append(text)


@dataclass(frozen=True)
class BranchAntiderivative:
    expr: sp.Expr
    method: str


def derivative_matches(candidate: sp.Expr, g: sp.Expr, cell: Cell) -> bool:
    """G′ − g ≡ 0, screened numerically then proved by SymPy."""
    return identity.is_zero_on(sp.diff(candidate, x) - g, cell)


def accept(
    candidate: sp.Expr, g: sp.Expr, cell: Cell, attempts: Attempts, label: str
) -> sp.Expr | None:
    """The candidate (or a sound real repair of it) if it is a verified real antiderivative on the cell."""
    if candidate is None or candidate.has(sp.Integral):
        attempts.add(f"{label}: no closed form (unevaluated Integral)")
        return None
    if candidate.has(sp.exp_polar):
        candidate = candidate.replace(sp.exp_polar, sp.exp)
    if not derivative_matches(candidate, g, cell):
        attempts.add(f"{label}: derivative check failed for {candidate}")
        return None
    if identity.real_on_cell(candidate, cell) is not False and screen.real(candidate, cell):
        return candidate
    for repair in (identity.drop_imaginary_constants, identity.real_logs):
        fixed = (
            repair(candidate)
            if repair is identity.drop_imaginary_constants
            else repair(candidate, cell)
        )
        if fixed is None:
            continue
        if (
            derivative_matches(fixed, g, cell)
            and identity.real_on_cell(fixed, cell) is not False
            and screen.real(fixed, cell)
        ):
            attempts.add(f"{label}: made real: {candidate} -> {fixed}")
            return fixed
    attempts.add(f"{label}: not real on ({cell.lo}, {cell.hi}): {candidate}")
    return None


def _x_factor(g: sp.Expr) -> sp.Expr | None:
    """h when g = x·h(x) with h transcendental (integration by parts helps), else None."""
    if not isinstance(g, sp.Mul) or x not in g.args or g.is_rational_function(x):
        return None
    h = g / x
    if not h.has(x) or h.is_polynomial(x):
        return None
    return h


def _u_integrand(g: sp.Expr, u: sp.Symbol) -> sp.Expr | None:
    """g(x) dx with u = eˣ (dx = du/u), hyperbolic functions written with exp; None if x remains."""
    if not g.has(sp.exp):
        return None
    integrand = g.subs(sp.exp(x), u).subs(x, sp.log(u)) / u
    if integrand.has(sp.sinh, sp.cosh, sp.tanh):
        integrand = integrand.rewrite(sp.exp)
    integrand = sp.cancel(sp.together(integrand))
    return None if integrand.has(x) else integrand


def _substitution_hopeful(integrand: sp.Expr, u: sp.Symbol) -> bool:
    """Rational in u, optionally times logs of polynomials; with logs, only real-rooted denominators."""
    functions = integrand.atoms(sp.Function)
    if any(f.func is not sp.log or not f.args[0].is_polynomial(u) for f in functions):
        return False
    numerator, denominator = sp.fraction(sp.together(integrand))
    if not denominator.is_polynomial(u):
        return False
    if not functions:
        return True
    try:
        poly = sp.Poly(denominator, u)
        return len(sp.real_roots(poly)) == poly.degree()
    except (sp.PolynomialError, NotImplementedError, ValueError):
        return False  # symbolic coefficients: the roots' reality is unknown


_U = sp.Symbol("u_subst", positive=True)


def _dilog_rule(integrand: sp.Expr) -> sp.Expr | None:
    """∫ log(1 + c·u)/u du = −Li₂(−c·u) (the rule SymPy reaches slowly through Meijer G)."""
    numerator, denominator = sp.fraction(sp.together(integrand))
    if denominator != _U or not isinstance(numerator, sp.log):
        return None
    poly = numerator.args[0].as_poly(_U)
    if poly is None or poly.degree() != 1 or poly.coeff_monomial(1) != 1:
        return None
    return -sp.polylog(2, -poly.coeff_monomial(_U) * _U)


@functools.lru_cache(maxsize=64)
def _integrate_in_u(integrand: sp.Expr) -> sp.Expr:
    """The integral in u: the dilogarithm rule, else SymPy's integrate (memoised: every use is
    verified anew)."""
    rule = _dilog_rule(integrand)
    return rule if rule is not None else sp.integrate(integrand, _U)


def _substitute(g: sp.Expr) -> Callable[[], sp.Expr] | None:
    integrand = _u_integrand(g, _U)
    if integrand is None or not _substitution_hopeful(integrand, _U):
        return None

    def run() -> sp.Expr:
        result = _integrate_in_u(integrand)
        result = sp.expand_func(result).replace(sp.exp_polar, sp.exp)
        return result.subs(_U, sp.exp(x))

    return run


_INVERSE_TRIG = (sp.atan, sp.acot, sp.asin, sp.acos)


def _complex_dilog_risk(g: sp.Expr) -> bool:
    """An inverse trigonometric function of a non-polynomial argument: its integral needs
    dilogarithms of complex arguments, which never give a real closed form here."""
    return any(not f.args[0].is_polynomial(x) for f in g.atoms(*_INVERSE_TRIG))


def _strategies(
    g: sp.Expr, cell: Cell, depth: int, limit: float | None, attempts: Attempts
) -> Iterator[tuple[str, Callable[[], sp.Expr]]]:
    if depth == 0 and _complex_dilog_risk(g):
        attempts.add(f"skipped {g}: inverse trigonometric function of a non-polynomial argument")
        return
    h = _x_factor(g) if depth > 0 else None
    if h is not None:
        yield "integration by parts", lambda: _by_parts(h, cell, limit, attempts)
    substitution = _substitute(g)
    if substitution is not None:
        yield "substitution u = exp(x)", substitution
    yield "SymPy manualintegrate", lambda: manualintegrate(g, x)
    if exp_rational.split_power_of_x(g) is not None:
        yield exp_rational.METHOD, lambda: exp_rational.antiderivative(g)
    if depth > 0:  # SymPy's full integrate is slow to fail: not inside integration by parts
        yield "SymPy integrate", lambda: sp.integrate(g, x)


def _by_parts(
    h: sp.Expr, cell: Cell, limit: float | None, attempts: Attempts
) -> tuple[sp.Expr, str] | None:
    """∫x·h = x·H − ∫H with H = ∫h (both found by the other strategies), and a label saying how."""
    inner = branch_antiderivative(h, cell, limit=limit, depth=0, attempts=attempts)
    if inner is None:
        return None
    H = inner.expr
    simpler = None
    with time_limit(limit):
        simpler = sp.simplify(H)
    if (
        simpler is not None
        and sp.count_ops(simpler) < sp.count_ops(H)
        and derivative_matches(simpler, h, cell)
    ):
        H = simpler
    outer = branch_antiderivative(H, cell, limit=limit, depth=0, attempts=attempts)
    if outer is None:
        return None
    label = f"integration by parts, x*h(x) with H = integral of h (h by {inner.method}; H by {outer.method})"
    return x * H - outer.expr, label


def branch_antiderivative(
    g: sp.Expr, cell: Cell, *, limit: float | None, depth: int = 1, attempts: Attempts | None = None
) -> BranchAntiderivative | None:
    """A verified real antiderivative of g on the cell, or None when no strategy finds one."""
    attempts = attempts if attempts is not None else Attempts()
    for label, run in _strategies(g, cell, depth, limit, attempts):
        candidate = None
        try:
            with time_limit(limit) as lim:
                candidate = run()
        except Exception as exc:  # a SymPy failure on odd input: try the next strategy
            attempts.add(f"{label}: failed ({type(exc).__name__})")
            continue
        if lim.expired:
            attempts.add(f"{label}: gave up after {limit:g} s")
            continue
        if isinstance(candidate, tuple):
            candidate, label = candidate
        accepted = accept(candidate, g, cell, attempts, f"{label} of {g}")
        if accepted is not None:
            return BranchAntiderivative(accepted, label)
    return None
