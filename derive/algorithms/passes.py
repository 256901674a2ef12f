"""Small expression passes, one job each, that carry an x-space update to a z-space recurrence.

inline_lets        y_k = x_k + β_k(x_k − x_{k−1}) is substituted where y appears
solve_argmin       argmin of a strongly convex quadratic, by its first-order condition
substitute_states  x_i → U z_i for every state (the papers' step 1: x = Uz)
apply_gradient     ∇f(v) → v − UΦ(Uv) = v − U T(U⁻¹v)   (SCIS (9), with T(z) = Φ(Wz), W = U²);
                   with an input, ∇F(v) = ∇f(v) − b → v − U T(U⁻¹v) − U u   (b = Uu)
cancel_left_u      U⁻¹(U a + U b) → a + b   (step 3: recover z = U⁻¹x)
linear_terms       split a linear combination into (coefficient, vector, Σ-limits) terms
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from derive.algorithms.symbols import GRAD, INNER, INPUT, SQNORM, T, U, is_state, k


class DerivationError(ValueError):
    """The iteration cannot be carried to a layer recurrence (not linear in U z, say)."""


def inline_lets(expr: sp.Expr, lets: Sequence[tuple[sp.Expr, sp.Expr]]) -> sp.Expr:
    """Replace every y(i) of a let `y(k) = rhs` by rhs with k → i (lets may use earlier lets)."""
    for lhs, rhs in reversed(lets):
        func = lhs.func
        expr = expr.replace(
            lambda e, f=func: isinstance(e, sp.core.function.AppliedUndef) and e.func == f,
            lambda e, r=rhs: r.subs(k, e.args[0]),
        )
    return expr


def solve_argmin(objective: sp.Expr, variable: sp.Symbol) -> sp.Expr:
    """The minimizer of an isotropic quadratic ⟨a, v⟩ + c‖v − b‖²/2 + … (c > 0 in total).

    Vectors enter only through inner() and sqnorm() with scalar weights, so the first-order
    condition reads the same with every vector replaced by a scalar placeholder; solving that
    linear equation and mapping the placeholders back gives the vector minimizer exactly.
    """
    placeholders: dict[sp.Basic, sp.Symbol] = {}

    def placeholder(e: sp.Basic) -> sp.Symbol:
        if e not in placeholders:
            placeholders[e] = sp.Dummy(f"p{len(placeholders)}")
        return placeholders[e]

    v = placeholder(variable)
    nc_atoms = [a for a in objective.atoms(sp.core.function.AppliedUndef) if is_state(a)]
    nc_atoms += [a for a in objective.atoms(sp.core.function.AppliedUndef) if a.func == GRAD]
    scalarised = objective.xreplace({a: placeholder(a) for a in nc_atoms})
    scalarised = scalarised.xreplace({variable: v})
    scalarised = scalarised.replace(INNER, lambda a, b: a * b).replace(SQNORM, lambda a: a**2)
    if any(not s.is_commutative for s in scalarised.free_symbols):
        raise DerivationError(f"argmin objective has vectors outside inner()/sqnorm(): {objective}")
    stationarity = sp.expand(sp.diff(scalarised, v))
    curvature = sp.diff(stationarity, v)
    if curvature.free_symbols or not curvature.is_positive or sp.diff(curvature, v) != 0:
        raise DerivationError(f"argmin objective is not a strongly convex quadratic in {variable}")
    solution = sp.expand(sp.solve(stationarity, v)[0])
    back = {p: e for e, p in placeholders.items()}
    return sp.expand(
        sum((c * back[p] for p, c in _linear_coefficients(solution, back)), sp.Integer(0))
    )


def _linear_coefficients(expr: sp.Expr, placeholders: dict) -> list[tuple[sp.Symbol, sp.Expr]]:
    poly = sp.Poly(expr, *placeholders.keys())
    if poly.total_degree() > 1 or poly.coeff_monomial(1) != 0:
        raise DerivationError(f"argmin solution is not linear in the vectors: {expr}")
    return [(p, poly.coeff_monomial(p)) for p in placeholders if poly.coeff_monomial(p) != 0]


def substitute_states(expr: sp.Expr, z_names: dict[str, str]) -> sp.Expr:
    """x_i → U z_i for every state stream (`z_names` maps x-space names to z-space names)."""

    def to_z(e: sp.Basic) -> sp.Expr:
        name = e.func.__name__
        if name not in z_names:
            raise DerivationError(f"unknown state {name!r} in {expr}")
        return U * sp.Function(z_names[name], commutative=False)(*e.args)

    return expr.replace(is_state, to_z)


def left_divide_u(expr: sp.Expr) -> sp.Expr:
    """U⁻¹ expr, for expr a linear combination of U·(vector) terms (sums allowed); U-free result."""
    terms = []
    for coefficient, vector, limits in linear_terms(expr):
        inner = sp.expand(U**-1 * vector)
        if inner.has(U):
            raise DerivationError(
                f"{vector} is not of the form U·z: the iteration is not expressible in z = U⁻¹x"
            )
        term = coefficient * inner
        terms.append(sp.Sum(term, *limits) if limits else term)
    return sp.Add(*terms)


def apply_gradient(expr: sp.Expr, with_input: bool = False) -> sp.Expr:
    """∇f(v) → v − U T(U⁻¹v): SCIS (9), ∇f(x) = x − UΦ(Ux), with Φ(U·U w) = Φ(W w) = T(w).

    With `with_input` the energy gains a linear term, F(x) = f(x) − ⟨b, x⟩, so every gradient
    also gives −b = −U u: the input u is injected wherever a gradient is taken.
    """

    def rule(argument: sp.Expr) -> sp.Expr:
        injected = U * INPUT if with_input else sp.Integer(0)
        return argument - U * T(left_divide_u(argument)) - injected

    return expr.replace(GRAD, rule)


def cancel_left_u(expr: sp.Expr) -> sp.Expr:
    """z_{k+1} = U⁻¹ x_{k+1}: strip the U that every term of a substituted update starts with."""
    return left_divide_u(expr)


def linear_terms(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Expr, tuple]]:
    """Split Σ c·v + Σ_j c(j)·v(j) into [(c, v, sum limits or ())], v noncommutative, c scalar."""
    expr = sp.expand(expr)
    if expr == 0:
        return []
    if isinstance(expr, sp.Add):
        return [t for a in expr.args for t in linear_terms(a)]
    if isinstance(expr, sp.Sum):
        return _sum_terms(sp.Integer(1), expr)
    if isinstance(expr, sp.Mul):
        commutative, noncommutative = expr.args_cnc()
        coefficient = sp.Mul(*commutative)
        rest = sp.Mul(*noncommutative)
        if isinstance(rest, sp.Sum):
            return _sum_terms(coefficient, rest)
        if not noncommutative:
            raise DerivationError(f"a scalar {expr} stands where a vector is expected")
        return [(coefficient, rest, ())]
    if expr.is_commutative:
        raise DerivationError(f"a scalar {expr} stands where a vector is expected")
    return [(sp.Integer(1), expr, ())]


def _sum_terms(coefficient: sp.Expr, total: sp.Sum) -> list[tuple[sp.Expr, sp.Expr, tuple]]:
    if len(total.limits) != 1:
        raise DerivationError(f"only single sums over the history are supported: {total}")
    out = []
    for c, v, limits in linear_terms(total.function):
        if limits:
            raise DerivationError(f"nested sums are not supported: {total}")
        out.append((coefficient * c, v, total.limits))
    return out
