"""From an x-space algorithm to its z-space layer recurrence, by the papers' three steps.

1. substitute x = Uz,   2. use ∇f(x) = x − UΦ(Ux) (SCIS (9)),   3. recover z = U⁻¹x (cancel U⁻¹U).
Nothing is typed in: SCIS (7), (10)–(13) come out of this module, and tests compare them with the
papers' printed equations. With an input, step 2 uses the energy F(x) = f(x) − ⟨b, x⟩ instead, so
every gradient also yields −b = −Uu and the recurrence gains the injected input u (every algorithm,
built-in or a user's spec, goes through the same passes).
"""

from __future__ import annotations

import sympy as sp

from derive.algorithms.ir import InitialCondition, Recurrence, StateRef, StreamUpdate, Term
from derive.algorithms.passes import (
    DerivationError,
    apply_gradient,
    cancel_left_u,
    inline_lets,
    linear_terms,
    solve_argmin,
    substitute_states,
)
from derive.algorithms.spec import Algorithm
from derive.algorithms.symbols import INPUT, T, is_state, j


def derive_recurrence(algorithm: Algorithm, *, with_input: bool = False) -> Recurrence:
    """The z-space recurrence (IR) of `algorithm`; DerivationError if the substitution fails.

    `with_input`: derive it for F(x) = f(x) − ⟨b, x⟩, b = Uu, so the input u enters the layers.
    """
    z_names = {s.name: s.z_name for s in algorithm.streams}
    order = [s.z_name for s in algorithm.streams]

    def to_z(expr: sp.Expr) -> tuple[Term, ...]:
        expr = inline_lets(expr, algorithm.lets)
        expr = substitute_states(expr, z_names)
        expr = apply_gradient(expr, with_input)
        return _collect(cancel_left_u(expr), order)

    updates = []
    for update in algorithm.updates:
        if update.argmin is not None:
            rhs = solve_argmin(update.argmin.expr, update.argmin.variable)
        elif update.rhs is not None:
            rhs = update.rhs
        else:
            raise DerivationError(f"update of {update.stream!r} has neither rhs nor argmin")
        updates.append(StreamUpdate(z_names[update.stream], to_z(rhs)))

    initial = []
    for lhs, rhs in algorithm.initial:
        if not is_state(lhs):
            raise DerivationError(f"initial condition must set a state, got {lhs}")
        target = StateRef(z_names[lhs.func.__name__], sp.sympify(lhs.args[0]))
        initial.append(InitialCondition(target, to_z(sp.sympify(rhs)) if rhs != 0 else ()))

    return Recurrence(
        algorithm=algorithm,
        updates=tuple(updates),
        initial=tuple(initial),
        output=to_z(algorithm.output),
        schedules=algorithm.resolved_schedules(),
    )


def _collect(expr: sp.Expr, stream_order: list[str]) -> tuple[Term, ...]:
    """IR terms of a z-space linear combination, like terms merged, in a canonical order."""
    merged: dict[tuple, sp.Expr] = {}
    bodies: dict[tuple, Term] = {}
    for coefficient, vector, limits in linear_terms(expr):
        history = None
        if limits:
            (var, lo, hi) = limits[0]
            if var != j:
                raise DerivationError(f"history sums must run over j, got {var}")
            history = (sp.sympify(lo), sp.sympify(hi))
        term = _term(vector, history, stream_order)
        key = (_sort_key(term, stream_order), sp.srepr(term.body()))
        merged[key] = merged.get(key, sp.Integer(0)) + coefficient
        bodies[key] = term
    out = []
    for key in sorted(merged):
        coefficient = sp.factor_terms(sp.simplify(merged[key]))
        if coefficient != 0:
            t = bodies[key]
            out.append(Term(coefficient, t.state, t.t_argument, t.history, t.injected))
    return tuple(out)


def _term(vector: sp.Expr, history: tuple | None, stream_order: list[str]) -> Term:
    if is_state(vector):
        return Term(sp.Integer(1), StateRef(vector.func.__name__, vector.args[0]), history=history)
    if isinstance(vector, sp.core.function.AppliedUndef) and vector.func == T:
        argument = _collect(vector.args[0], stream_order)
        if any(t.history is not None or (t.is_t and history is not None) for t in argument):
            raise DerivationError(
                f"T must act on a combination of states and gradients at points, not on a sum over "
                f"the history: {vector}"
            )
        return Term(sp.Integer(1), t_argument=argument, history=history)
    if vector == INPUT:
        return Term(sp.Integer(1), history=history, injected=True)
    raise DerivationError(f"cannot read {vector} as a state or as T(...)")


def _sort_key(term: Term, stream_order: list[str]) -> tuple:
    """T-terms first, then states by stream and newest index first, then the input u; history
    terms last."""
    history = 1 if term.history is not None else 0
    if term.injected:
        return (history, 2, 0, 0, "")
    if term.is_t:
        first = term.t_argument[0].state if term.t_argument else None
        stream = stream_order.index(first.stream) if first else 0
        lag = first.lag() if first and first.lag() is not None else 99
        return (history, 0, stream, lag, sp.srepr(term.body()))
    assert term.state is not None
    lag = term.state.lag()
    return (
        history,
        1,
        stream_order.index(term.state.stream),
        lag if lag is not None else 99,
        sp.srepr(term.body()),
    )
