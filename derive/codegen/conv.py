"""The conv (engineering) forms of SCIS appendix C, read off the IR.

The papers relax a derived recurrence in two steps: Φ(W·) becomes a learnable block T_k, and
every coefficient becomes a constant that may be kept, learned or pruned ("adaptive coefficients").
This module does that relaxation mechanically:

- lagged: one T-term and a bounded look-back, z_{k+1} = ρ(α T_k(Σ_l γ_l z_{k−l}) + Σ_l β_l z_{k−l});
  heavy ball gives (C1) (T(z_k) + β₁z_k + β₂z_{k−1}), Nesterov gives (C2) (T(β₁z_k + β₂z_{k−1})).
- dense: the all-history form (12) gives (C3)/(C6), z_{k+1} = Σ_j α^j T(z_j) + β(z_k − Σ_j h_{k+1,j} z_j).
- twopath: ADMM (13) gives the two-path (C5).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.algorithms.ir import Recurrence, StateRef, Term, unroll_accumulators
from derive.algorithms.render import UnicodePrinter, algorithm_lines, names_of, recurrence_lines
from derive.algorithms.symbols import j, k
from derive.codegen.fc import class_name
from derive.codegen.printer import (
    CoefficientPrinter,
    bindings,
    constants_code,
    join_signed,
    schedule_code,
)
from derive.codegen.templates import render
from derive.errors import UserError

_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


@dataclass(frozen=True)
class EngineeringCoefficient:
    """One relaxed coefficient: its name in code, its symbol, and the value the algorithm gives."""

    name: str  # beta1
    symbol: str  # β₁
    role: str  # "outer" (multiplies z_{k−lag}), "inner" (inside T) or "t" (multiplies T)
    lag: int | None
    expr: sp.Expr  # the derived value, in k, coefficients and schedules
    code: str  # the same as Python, for block_coefficients()
    text: str  # the same in Unicode, for docstrings


@dataclass(frozen=True)
class LaggedForm:
    """A single-stream recurrence with one T-term and look-back `lags` (1 = z_k only)."""

    lags: int
    inner_identity: bool  # T reads z_k itself (C1); otherwise a combination (C2)
    coefficients: tuple[EngineeringCoefficient, ...]
    output: tuple[tuple[int, str], ...]  # stage output Σ c·z_{K−lag}: (lag, python coefficient)
    label: str  # "(C1)", "(C2)" or "lagged"

    def by_role(self, role: str) -> list[EngineeringCoefficient]:
        return [c for c in self.coefficients if c.role == role]

    def equation(self) -> str:
        """z_{k+1} = ρ(T_k(zₖ) + β₁·zₖ + β₂·zₖ₋₁) in Unicode."""

        def state(lag: int) -> str:
            return "zₖ" if lag == 0 else "zₖ₋" + str(lag).translate(_SUBSCRIPTS)

        inner = (
            "zₖ"
            if self.inner_identity
            else " + ".join(f"{c.symbol}·{state(c.lag)}" for c in self.by_role("inner"))
        )
        t = f"T_k({inner})"
        alpha = self.by_role("t")
        parts = [f"{alpha[0].symbol}·{t}" if alpha else t]
        parts += [f"{c.symbol}·{state(c.lag)}" for c in self.by_role("outer")]
        return "zₖ₊₁ = ρ(" + " + ".join(parts) + ")"


def lagged_form(recurrence: Recurrence) -> LaggedForm:
    """Relax a single-stream, bounded-look-back recurrence into its engineering form."""
    if len(recurrence.updates) != 1 or recurrence.has_history():
        raise UserError(
            f"{recurrence.name}: the lagged conv form needs one stream and a bounded look-back; "
            "use --form fc"
        )
    (update,) = recurrence.updates
    t_terms = [t for t in update.terms if t.is_t]
    state_terms = [t for t in update.terms if not t.is_t]
    if len(t_terms) != 1:
        raise UserError(
            f"{recurrence.name}: the conv form needs exactly one T-term, found {len(t_terms)}"
        )
    (t_term,) = t_terms
    printer = CoefficientPrinter({s.name for s in recurrence.schedules})
    text = UnicodePrinter(names_of(recurrence.algorithm))

    def lag_of(term: Term) -> int:
        lag = term.state.lag() if term.state is not None else None
        if lag is None or lag < 0:
            raise UserError(f"{recurrence.name}: cannot read the look-back of {term.to_sympy()}")
        return lag

    inner_identity = (
        len(t_term.t_argument) == 1
        and t_term.t_argument[0].coefficient == 1
        and lag_of(t_term.t_argument[0]) == 0
    )
    coefficients: list[EngineeringCoefficient] = []
    outer_name = "beta"
    inner_name = "beta" if not state_terms else "gamma"
    inner_symbol = "β" if not state_terms else "γ"
    if not inner_identity:
        for term in t_term.t_argument:
            lag = lag_of(term)
            coefficients.append(
                _coefficient(
                    f"{inner_name}{lag + 1}",
                    inner_symbol,
                    "inner",
                    lag,
                    term.coefficient,
                    printer,
                    text,
                )
            )
    if t_term.coefficient != 1:
        coefficients.append(
            _coefficient("alpha", "α", "t", None, t_term.coefficient, printer, text)
        )
    for term in state_terms:
        lag = lag_of(term)
        coefficients.append(
            _coefficient(
                f"{outer_name}{lag + 1}", "β", "outer", lag, term.coefficient, printer, text
            )
        )
    lags = 1 + max([c.lag for c in coefficients if c.lag is not None] + [0])
    output = []
    for term in recurrence.output:
        lag = lag_of(term)
        if lag >= lags:
            lags = lag + 1
        output.append((lag, printer.doprint(term.coefficient)))
    if inner_identity and state_terms:
        label = "(C1)"
    elif not inner_identity and not state_terms:
        label = "(C2)"
    else:
        label = "lagged"
    return LaggedForm(lags, inner_identity, tuple(coefficients), tuple(output), label)


def _coefficient(
    name: str,
    symbol: str,
    role: str,
    lag: int | None,
    expr: sp.Expr,
    printer: CoefficientPrinter,
    text: UnicodePrinter,
) -> EngineeringCoefficient:
    shown = symbol if lag is None else symbol + str(lag + 1).translate(_SUBSCRIPTS)
    return EngineeringCoefficient(
        name, shown, role, lag, expr, printer.doprint(expr), text.doprint(expr)
    )


def _common_context(recurrence: Recurrence) -> dict[str, object]:
    algorithm = recurrence.algorithm
    schedules = schedule_code(recurrence.schedules)
    return {
        "name": algorithm.name,
        "title": algorithm.title,
        "reference": algorithm.reference,
        "equation": algorithm.equation,
        "z_equation": algorithm.z_equation,
        "x_lines": algorithm_lines(algorithm),
        "z_lines": recurrence_lines(recurrence),
        "special_cases": [(s.network, s.setting) for s in algorithm.special_cases],
        "coefficients": [
            {"name": c.name, "default": repr(float(sp.N(c.default, 17))), "doc": c.doc}
            for c in recurrence.coefficients
        ],
        "constants": constants_code(recurrence),
        "schedules": schedules,
    }


def render_lagged(recurrence: Recurrence) -> str:
    """Source of `ALGO_conv.py` for a lagged (C1)/(C2)-type recurrence."""
    form = lagged_form(recurrence)
    used = _used_tables(recurrence, [c.expr for c in form.coefficients])
    context = _common_context(recurrence)
    printed = [c.code for c in form.coefficients] + [e for _, e in context["constants"]]
    printed += [line for s in context["schedules"] for line in s.lines]
    return render(
        "conv_lagged.py.j2",
        **context,
        uses_math=any("math." in t for t in printed),
        form=form,
        used_tables=used,
        class_prefix=class_name(recurrence.name, ""),
        block_bindings=bindings(recurrence, [c.code for c in form.coefficients]),
        output_bindings=bindings(recurrence, [c for _, c in form.output]),
        output_is_newest=form.output == ((0, "1"),),
    )


def _used_tables(recurrence: Recurrence, exprs: list[sp.Expr]) -> list[str]:
    names = {
        a.func.__name__ for e in exprs for a in sp.sympify(e).atoms(sp.core.function.AppliedUndef)
    }
    return [s.name for s in recurrence.schedules if s.name in names]


def render_conv(recurrence: Recurrence) -> str:
    """Source of `ALGO_conv.py`: the engineering form the algorithm's recurrence calls for."""
    engineering = recurrence.algorithm.engineering
    if engineering == "dense":
        return render_dense(recurrence)
    if engineering == "twopath":
        return render_twopath(recurrence)
    return render_lagged(recurrence)


@dataclass(frozen=True)
class HistoryForm:
    """Per-source coefficients over the whole history, as Python list comprehensions over j."""

    alpha: str  # the coefficient of T(z_j) (dense) or of z'_j (two-path), for j = 0 … k
    state: str  # the coefficient of z_j, for j = 0 … k
    alpha_text: str
    state_text: str


def _per_source(terms: list[Term], stream: str) -> list[tuple[sp.Expr, sp.Expr | None]]:
    """The weight of z_j (0 ≤ j ≤ k) on `stream` as [(coefficient, condition or None)], summed."""
    pieces: list[tuple[sp.Expr, sp.Expr | None]] = []
    for term in terms:
        if term.state is None or term.state.stream != stream:
            continue
        if term.history is None:
            lag = term.state.lag()
            if lag is None:
                raise UserError(f"cannot read {term.to_sympy()} as a look-back term")
            pieces.append((term.coefficient, sp.Eq(j, k - lag)))
            continue
        lo, hi = term.history
        if hi != k:
            raise UserError(f"history sums must run to k, got {term.to_sympy()}")
        pieces.append((term.coefficient, None if lo == 0 else j >= lo))
    return pieces


def _pieces_code(pieces: list[tuple[sp.Expr, sp.Expr | None]], printer: CoefficientPrinter) -> str:
    parts = []
    for coefficient, condition in pieces:
        c = printer.doprint(coefficient)
        parts.append(c if condition is None else f"({c} if {printer.doprint(condition)} else 0)")
    if len(parts) == 1 and parts[0].startswith("(") and parts[0].endswith(" else 0)"):
        return parts[0][1:-1]
    return join_signed(parts) if parts else "0"


def _pieces_text(pieces: list[tuple[sp.Expr, sp.Expr | None]], printer: UnicodePrinter) -> str:
    parts = []
    for coefficient, condition in pieces:
        c = printer.doprint(coefficient)
        if condition is not None:
            cond = (
                printer.doprint(condition).replace("Eq(j, ", "j = ").rstrip(")")
                if isinstance(condition, sp.Eq)
                else printer.doprint(condition)
            )
            c = f"{c}·[{cond}]" if c not in ("1",) else f"[{cond}]"
        parts.append(c)
    return " + ".join(parts).replace("+ -", "− ") if parts else "0"


def dense_form(recurrence: Recurrence) -> HistoryForm:
    """(C3)/(C6) from an all-history single-stream recurrence such as SCIS (12)."""
    if len(recurrence.updates) != 1:
        raise UserError(f"{recurrence.name}: the dense conv form needs a single stream")
    (update,) = recurrence.updates
    stream = update.stream
    t_terms = [t for t in update.terms if t.is_t]
    if (
        len(t_terms) != 1
        or t_terms[0].history is None
        or t_terms[0].t_argument != (Term(sp.Integer(1), StateRef(stream, j)),)
    ):
        raise UserError(
            f"{recurrence.name}: the dense conv form needs one Σ_j a_(k+1,j) T(z_j) term"
        )
    printer = CoefficientPrinter({s.name for s in recurrence.schedules})
    text = UnicodePrinter(names_of(recurrence.algorithm))
    alpha = t_terms[0].coefficient
    state = _per_source([t for t in update.terms if not t.is_t], stream)
    _check_block_input_leaves(recurrence, state)
    return HistoryForm(
        printer.doprint(alpha),
        _pieces_code(state, printer),
        text.doprint(alpha),
        _pieces_text(state, text),
    )


def _check_block_input_leaves(
    recurrence: Recurrence, state: list[tuple[sp.Expr, sp.Expr | None]], steps: int = 6
) -> None:
    """The dense block input z_0 has other channels than z_1, z_2, …: its state weight must be 0.

    For SCIS (5) it is: h_{1,0} = 1 cancels z_0 at k = 0, and h_{k+1,0} = 0 for k ≥ 1 because
    h_{2,0} = β_2(h_{1,0} − 1) = 0 (induction). Checked exactly for the first `steps` layers (exact
    θ_k grow threefold per step); the generated stage checks every layer numerically.
    """
    from derive.algorithms.schedules import ScheduleTable

    table = ScheduleTable(recurrence.schedules, recurrence.coefficient_values(), exact=True)
    weight = sp.Add(
        *(c if cond is None else sp.Piecewise((c, cond), (0, True)) for c, cond in state)
    )
    for step in range(steps):
        value = sp.simplify(table.evaluate(weight, k=step, j=0))
        if value != 0:
            raise UserError(
                f"{recurrence.name}: the dense form needs the block input out of the state sum, "
                f"but its weight at layer {step} is {value}"
            )


def twopath_form(recurrence: Recurrence) -> HistoryForm:
    """(C5) from ADMM's recurrence: α_t, β_t are the first path's weights of z'_t and z_t."""
    unrolled = unroll_accumulators(recurrence)
    if len(unrolled.updates) != 2:
        raise UserError(f"{recurrence.name}: the two-path conv form needs two streams")
    first, second = unrolled.updates
    printer = CoefficientPrinter({s.name for s in recurrence.schedules})
    text = UnicodePrinter(names_of(recurrence.algorithm))
    t_terms = [t for t in first.terms if t.is_t]
    if len(t_terms) != 1:
        raise UserError(f"{recurrence.name}: the two-path form needs one T-term per path")
    states = [t for t in first.terms if not t.is_t]
    alpha = _per_source(states, first.stream)
    beta = _per_source(states, second.stream)
    return HistoryForm(
        _pieces_code(alpha, printer),
        _pieces_code(beta, printer),
        _pieces_text(alpha, text),
        _pieces_text(beta, text),
    )


def render_dense(recurrence: Recurrence) -> str:
    """Source of `ALGO_conv.py` for an all-history recurrence: the dense form (C3)/(C6)."""
    return _render_history("conv_dense.py.j2", recurrence, dense_form(recurrence))


def render_twopath(recurrence: Recurrence) -> str:
    """Source of `ALGO_conv.py` for a two-stream recurrence: the two-path form (C5)."""
    return _render_history("conv_twopath.py.j2", recurrence, twopath_form(recurrence))


def _render_history(template: str, recurrence: Recurrence, form: HistoryForm) -> str:
    context = _common_context(recurrence)
    printed = [form.alpha, form.state] + [line for s in context["schedules"] for line in s.lines]
    return render(
        template,
        **context,
        form=form,
        uses_math=any("math." in t for t in printed),
        used_tables=_used_tables(recurrence, _atoms_of(recurrence)),
        class_prefix=class_name(recurrence.name, ""),
    )


def _atoms_of(recurrence: Recurrence) -> list[sp.Expr]:
    return [t.coefficient for u in recurrence.updates for t in u.terms]


__all__ = ["HistoryForm", "LaggedForm", "dense_form", "lagged_form", "render_conv", "twopath_form"]
