"""∫ xᵏ·R(eˣ) dx (k = 0 or 1, R rational) by partial fractions in u = eˣ over the complex roots.

R(u) = Σₙ qₙuⁿ + Σᵣ Aᵣ/(u − r) over the simple roots r of R's denominator (found exactly, from
factors of degree at most 2). With c = −1/r, each pole term is (−Aᵣ/r)/(1 + c·eˣ), and

    ∫ 1/(1 + c·eˣ) dx = x − log(1 + c·eˣ),
    ∫ x/(1 + c·eˣ) dx = x²/2 − x·log(1 + c·eˣ) − Li₂(−c·eˣ)

(differentiate: d/dx Li₂(−c·eˣ) = −log(1 + c·eˣ)). Branch cuts: for real x, when c is not real
the imaginary part of 1 + c·eˣ (and of −c·eˣ) is Im(c)·eˣ ≠ 0, so neither the cut (−∞, 0] of log
nor the cut [1, ∞) of Li₂ is ever reached; when c > 0, 1 + c·eˣ > 0 and −c·eˣ < 0. Either way
both functions stay on their principal branches, analytic along the whole real line. A real
c < 0 is a pole of R at x = −log(−c) (Φ is not continuous there) and is refused.

For real R the complex roots come in conjugate pairs whose terms are complex conjugates (the
principal branches commute with conjugation off their cuts), so a pair contributes 2·Re of the
term of its root with Im r > 0; SymPy writes Re(·) with log|·|, arg(·) (written as atan here, see
identity.principal_args) and Re/Im of Li₂.

Example (mish): tanh(softplus(x)) = 1 − 2/(e²ˣ + 2eˣ + 2), roots eˣ = −1 ± i.
"""

from __future__ import annotations

import sympy as sp
from sympy.polys.partfrac import apart_list

from derive.symbolic import identity
from derive.symbolic.symbols import x

_U = sp.Symbol("u_exp", positive=True)
MAX_FACTOR_DEGREE = 2  # roots of higher-degree factors are unreadable radicals (or none exist)
METHOD = "partial fractions in u = exp(x) over the complex roots of the denominator"


def rational_in_exp(h: sp.Expr) -> sp.Expr | None:
    """R(u) with h(x) = R(eˣ), R rational with numeric coefficients; None otherwise."""
    if h.has(sp.sinh, sp.cosh, sp.tanh):
        h = h.rewrite(sp.exp)
    if not h.has(sp.exp):
        return None
    expr = h.subs(sp.exp(x), _U)
    if expr.has(x):
        expr = expr.subs(x, sp.log(_U))
    expr = sp.cancel(sp.together(sp.expand_log(expr, force=True)))
    if expr.free_symbols - {_U} or not expr.is_rational_function(_U):
        return None
    return expr


def split_power_of_x(g: sp.Expr) -> tuple[int, sp.Expr] | None:
    """(k, R) with g = xᵏ·R(eˣ), k ∈ {0, 1}; None when g is not of that shape."""
    rational = rational_in_exp(g)
    if rational is not None:
        return 0, rational
    if not isinstance(g, sp.Mul) or x not in g.args:
        return None
    rational = rational_in_exp(g / x)
    return (1, rational) if rational is not None else None


def _roots(poly: sp.Poly) -> list[sp.Expr] | None:
    """The exact roots of `poly` (all simple), from its factors of degree ≤ 2; None otherwise."""
    found: list[sp.Expr] = []
    for factor, multiplicity in sp.factor_list(poly.as_expr(), poly.gen)[1]:
        degree = sp.degree(factor, poly.gen)
        if multiplicity != 1 or degree > MAX_FACTOR_DEGREE:
            return None
        roots = sp.roots(sp.Poly(factor, poly.gen))
        if sum(roots.values()) != degree or any(m != 1 for m in roots.values()):
            return None
        found += list(roots)
    return found


def _pole_term(k: int, weight: sp.Expr, c: sp.Expr) -> sp.Expr:
    """∫ xᵏ·weight/(1 + c·eˣ) dx (the two formulas of the module docstring)."""
    log_term = sp.log(1 + c * sp.exp(x))
    if k == 0:
        return weight * (x - log_term)
    return weight * (x**2 / 2 - x * log_term - sp.polylog(2, -c * sp.exp(x)))


def _power_term(k: int, q: sp.Expr, n: int) -> sp.Expr:
    """∫ xᵏ·q·eⁿˣ dx."""
    if n == 0:
        return q * x ** (k + 1) / (k + 1)
    if k == 0:
        return q * sp.exp(n * x) / n
    return q * sp.exp(n * x) * (x / n - sp.Rational(1, n**2))


def _terms(k: int, rational: sp.Expr) -> list[sp.Expr] | None:
    """The antiderivative of xᵏ·R(eˣ), term by term; None if a root is unusable."""
    common, polynomial, fractions = apart_list(rational, _U)
    terms = [_power_term(k, common * q, n) for (n,), q in polynomial.as_poly(_U).terms() if q != 0]
    for root_poly, numerator, denominator, multiplicity in fractions:
        if multiplicity != 1:
            return None
        roots = _roots(sp.Poly(root_poly.as_expr(), root_poly.gen))
        if roots is None:
            return None
        for r in roots:
            if sp.expand(denominator(r) - (_U - r)) != 0:
                return None
            if sp.im(r).is_negative and sp.conjugate(r) in roots:
                continue  # its term is the conjugate of its partner's: counted there, twice
            pair = 2 if sp.im(r).is_positive and sp.conjugate(r) in roots else 1
            weight = sp.radsimp(pair * common * numerator(r))
            if r == 0:  # weight/u = weight·e^{−x}
                terms.append(_power_term(k, weight, -1))
                continue
            c = sp.expand(sp.radsimp(-1 / r))
            if c.is_extended_real and not c.is_positive:
                return None  # a pole of R on the real line
            terms.append(_pole_term(k, sp.expand(sp.radsimp(-weight / r)), c))
    return terms


def _readable(expr: sp.Expr) -> sp.Expr:
    """log(√Q) → log(Q)/2 and arg(z) → atan (identity.principal_args): the same function."""
    expr = expr.replace(
        lambda e: isinstance(e, sp.log) and e.args[0].is_Pow and e.args[0].exp == sp.S.Half,
        lambda e: sp.log(e.args[0].base) / 2,
    )
    return identity.principal_args(expr)


def antiderivative(g: sp.Expr) -> sp.Expr | None:
    """A real antiderivative of g = xᵏ·R(eˣ) by the partial fractions above; None when g is not of
    that shape or R has repeated roots, roots from factors of degree > 2, or real poles."""
    shape = split_power_of_x(g)
    if shape is None:
        return None
    k, rational = shape
    terms = _terms(k, rational)
    if terms is None:
        return None
    real = sp.Add(*(term for term in terms if not term.has(sp.I)))
    complex_part = sp.Add(*(term for term in terms if term.has(sp.I)))
    if complex_part == 0:
        return real
    return real + _readable(sp.re(sp.expand(complex_part)))
