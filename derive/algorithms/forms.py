"""The shape of a derived recurrence: which terms, lags and coefficients (a pass over the IR).

The papers relax a derived recurrence in two steps (SCIS appendix C): Φ(W·) becomes a learnable
block T_k, and every coefficient becomes a constant that may be kept, learned or pruned. Before
either, one has to read off the recurrence *what it is made of*; that reading lives here, beside the
IR, because several stages use it:

- code generation (`derive.codegen.conv`) prints the engineering forms;
- NAS search spaces (`derive.nas`) turn each term into a mixed edge;
- reversibility (`invertibility`) reads whether the oldest state enters linearly.

Three shapes are recognised:

- lagged: one stream, one T-term and a bounded look-back,
  z_{k+1} = α T_k(Σ_l γ_l z_{k−l}) + Σ_l β_l z_{k−l}; heavy ball gives (C1) (T(z_k) + β₁z_k + β₂z_{k−1}),
  Nesterov gives (C2) (T(β₁z_k + β₂z_{k−1}));
- dense: the all-history form (12), z_{k+1} = Σ_j a_{k+1,j} T(z_j) + Σ_j s_{k+1,j} z_j ((C3)/(C6));
- twopath: ADMM (13), two streams with accumulated histories ((C5)).

Everything here is exact SymPy; nothing is printed as code.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.algorithms.ir import Recurrence, StateRef, Term, unroll_accumulators
from derive.algorithms.symbols import j, k
from derive.errors import UserError

_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def state_text(lag: int) -> str:
    """zₖ, zₖ₋₁, zₖ₋₂, … in Unicode."""
    return "zₖ" if lag == 0 else "zₖ₋" + str(lag).translate(_SUBSCRIPTS)


@dataclass(frozen=True)
class EngineeringCoefficient:
    """One relaxed coefficient: its name in code, its symbol, its role, and the value the algorithm gives."""

    name: str  # beta1
    symbol: str  # β₁
    role: str  # "outer" (multiplies z_{k−lag}), "inner" (inside T) or "t" (multiplies T)
    lag: int | None
    expr: sp.Expr  # the derived value, in k, coefficients and schedules


@dataclass(frozen=True)
class LaggedForm:
    """A single-stream recurrence with one T-term and look-back `lags` (1 = z_k only)."""

    lags: int
    inner_identity: bool  # T reads z_k itself (C1); otherwise a combination (C2)
    coefficients: tuple[EngineeringCoefficient, ...]
    output: tuple[tuple[int, sp.Expr], ...]  # stage output Σ c·z_{K−lag}: (lag, coefficient)
    label: str  # "(C1)", "(C2)" or "lagged"

    def by_role(self, role: str) -> list[EngineeringCoefficient]:
        return [c for c in self.coefficients if c.role == role]

    def t_text(self) -> str:
        """The T-term in Unicode: T_k(zₖ), α·T_k(γ₁·zₖ + γ₂·zₖ₋₁), …"""
        inner = (
            "zₖ"
            if self.inner_identity
            else " + ".join(f"{c.symbol}·{state_text(c.lag)}" for c in self.by_role("inner"))
        )
        alpha = self.by_role("t")
        return f"{alpha[0].symbol}·T_k({inner})" if alpha else f"T_k({inner})"

    def equation(self) -> str:
        """z_{k+1} = ρ(T_k(zₖ) + β₁·zₖ + β₂·zₖ₋₁) in Unicode."""
        parts = [self.t_text()]
        parts += [f"{c.symbol}·{state_text(c.lag)}" for c in self.by_role("outer")]
        return "zₖ₊₁ = ρ(" + " + ".join(parts) + ")"


def term_lag(recurrence: Recurrence, term: Term) -> int:
    """k − index of a bounded state term (0 for z_k); UserError for anything else."""
    lag = term.state.lag() if term.state is not None else None
    if lag is None or lag < 0:
        raise UserError(f"{recurrence.name}: cannot read the look-back of {term.to_sympy()}")
    return lag


def lagged_form(recurrence: Recurrence) -> LaggedForm:
    """Read a single-stream, bounded-look-back recurrence as its engineering form."""
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
    assert t_term.t_argument is not None
    inner_identity = (
        len(t_term.t_argument) == 1
        and t_term.t_argument[0].coefficient == 1
        and term_lag(recurrence, t_term.t_argument[0]) == 0
    )
    coefficients: list[EngineeringCoefficient] = []
    inner_name, inner_symbol = ("beta", "β") if not state_terms else ("gamma", "γ")
    if not inner_identity:
        for term in t_term.t_argument:
            lag = term_lag(recurrence, term)
            coefficients.append(
                _coefficient(f"{inner_name}{lag + 1}", inner_symbol, "inner", lag, term.coefficient)
            )
    if t_term.coefficient != 1:
        coefficients.append(_coefficient("alpha", "α", "t", None, t_term.coefficient))
    for term in state_terms:
        lag = term_lag(recurrence, term)
        coefficients.append(_coefficient(f"beta{lag + 1}", "β", "outer", lag, term.coefficient))
    lags = 1 + max([c.lag for c in coefficients if c.lag is not None] + [0])
    output = []
    for term in recurrence.output:
        lag = term_lag(recurrence, term)
        lags = max(lags, lag + 1)
        output.append((lag, term.coefficient))
    if inner_identity and state_terms:
        label = "(C1)"
    elif not inner_identity and not state_terms:
        label = "(C2)"
    else:
        label = "lagged"
    return LaggedForm(lags, inner_identity, tuple(coefficients), tuple(output), label)


def _coefficient(
    name: str, symbol: str, role: str, lag: int | None, expr: sp.Expr
) -> EngineeringCoefficient:
    shown = symbol if lag is None else symbol + str(lag + 1).translate(_SUBSCRIPTS)
    return EngineeringCoefficient(name, shown, role, lag, expr)


@dataclass(frozen=True)
class Invertibility:
    """Whether one block of a stage can be run backwards: z_{k−m} from z_{k+1}, …, z_{k−m+1}.

    A lagged form with look-back m + 1 is invertible when its oldest state z_{k−m} enters the update
    only linearly (outside T) and its coefficient is not zero: then
    z_{k−m} = (z_{k+1} − α T_k(…) − Σ_{l<m} β_{l+1} z_{k−l}) / β_{m+1}, where T reads only newer states.
    Whether a *built* block is invertible also depends on how it is relaxed (ρ after the sum, the
    coefficient pruned or set to 0); the generated block checks that (`not_invertible_because`).
    """

    invertible: bool
    reason: str  # why not, in words ("" when invertible)
    divisor: EngineeringCoefficient | None = None  # the oldest state's coefficient
    equation: str = ""  # the inverse step in Unicode ("" when not invertible)

    def summary(self) -> str:
        """One line: the inverse step, or why there is none."""
        return self.equation if self.invertible else f"not invertible: {self.reason}"


def invertibility(recurrence: Recurrence) -> Invertibility:
    """Decide from the derived recurrence whether its engineering form can be run backwards."""
    engineering = recurrence.algorithm.engineering
    if engineering == "dense":
        return Invertibility(
            False,
            "the all-history form (C3) feeds every earlier state z_0 … z_k into each block, so a "
            "stage keeps them all anyway and there is no inverse step that saves memory",
        )
    if engineering == "twopath":
        return Invertibility(
            False,
            "the two-path form (C5) reads the accumulated sum Σ_t (z′_t − z_t) over the whole "
            "history, not a bounded look-back of one stream",
        )
    try:
        form = lagged_form(recurrence)
    except UserError as exc:
        return Invertibility(False, str(exc))
    return lagged_invertibility(recurrence, form)


def lagged_invertibility(recurrence: Recurrence, form: LaggedForm) -> Invertibility:
    """The invertibility rule of `Invertibility` applied to a lagged form."""
    from derive.algorithms.render import UnicodePrinter, names_of

    oldest = form.lags - 1
    text = UnicodePrinter(names_of(recurrence.algorithm))
    state = state_text(oldest)
    reasons = []
    if form.inner_identity:
        inside_t = oldest == 0
    else:
        inside_t = any(
            c.lag == oldest and not _identically_zero(recurrence, c.expr)
            for c in form.by_role("inner")
        )
    if inside_t:
        reasons.append(f"{state} enters through T ({form.equation()}), which cannot be undone")
    divisor = next((c for c in form.by_role("outer") if c.lag == oldest), None)
    if divisor is None:
        if not inside_t:
            reasons.append(f"{state} does not enter the update linearly")
    elif _identically_zero(recurrence, divisor.expr):
        reasons.append(
            f"{'and ' if reasons else ''}its linear coefficient {divisor.symbol} = "
            f"{text.doprint(divisor.expr)} is identically 0 for this algorithm"
        )
    else:
        zero_at = _zero_at_defaults(recurrence, divisor.expr)
        if zero_at is not None:
            reasons.append(
                f"{'and ' if reasons else ''}its linear coefficient {divisor.symbol} = "
                f"{text.doprint(divisor.expr)} is 0 at the default coefficients (block k = {zero_at})"
            )
    if reasons:
        return Invertibility(False, "; ".join(reasons), divisor)
    assert divisor is not None
    newer = [f"{c.symbol}·{state_text(c.lag)}" for c in form.by_role("outer") if c.lag != oldest]
    numerator = " − ".join(["zₖ₊₁", form.t_text(), *newer])
    return Invertibility(True, "", divisor, f"{state} = ({numerator})/{divisor.symbol}")


def _constants(recurrence: Recurrence) -> dict[sp.Symbol, sp.Expr]:
    """The algorithm's named constants in terms of its coefficients (ρ, α, … of triple momentum)."""
    values: dict[sp.Symbol, sp.Expr] = {}
    for constant in recurrence.algorithm.constants:  # in dependency order
        values[constant.sym] = sp.sympify(constant.expr).subs(values)
    return values


def _identically_zero(recurrence: Recurrence, expr: sp.Expr) -> bool:
    """True when `expr` is 0 for every value of the algorithm's coefficients (constants expanded)."""
    return sp.simplify(sp.sympify(expr).subs(_constants(recurrence))) == 0


def _zero_at_defaults(recurrence: Recurrence, expr: sp.Expr, blocks: int = 6) -> int | None:
    """The first block k = 1 … `blocks` − 1 where `expr` is 0 at the default coefficients, or None.

    Block 0 reads the stage input (z_{−l} = z_0) and is never run backwards, so it is not checked.
    """
    from derive.algorithms.schedules import ScheduleTable

    table = ScheduleTable(recurrence.schedules, recurrence.coefficient_values(), exact=True)
    for step in range(1, blocks):
        if sp.simplify(table.evaluate(expr, k=step)) == 0:
            return step
    return None


Piece = tuple[sp.Expr, sp.Expr | None]
"""(coefficient, condition on j or None): the weight of z_j is Σ coefficient·[condition]."""


@dataclass(frozen=True)
class DenseForm:
    """(C3)/(C6): z_{k+1} = Σ_j alpha(k, j) T(z_j) + Σ_j state(k, j) z_j, 0 ≤ j ≤ k."""

    alpha: sp.Expr
    state: tuple[Piece, ...]


@dataclass(frozen=True)
class TwoPathForm:
    """(C5): the first path's weights of z'_j (alpha) and z_j (beta), 0 ≤ j ≤ k, after unrolling μ."""

    alpha: tuple[Piece, ...]
    beta: tuple[Piece, ...]


def per_source(terms: list[Term], stream: str) -> tuple[Piece, ...]:
    """The weight of `stream`'s z_j (0 ≤ j ≤ k) in `terms` as pieces: look-back terms become [j = k − lag]."""
    pieces: list[Piece] = []
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
    return tuple(pieces)


def dense_form(recurrence: Recurrence) -> DenseForm:
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
    state = per_source([t for t in update.terms if not t.is_t], stream)
    _check_block_input_leaves(recurrence, state)
    return DenseForm(t_terms[0].coefficient, state)


def _check_block_input_leaves(
    recurrence: Recurrence, state: tuple[Piece, ...], steps: int = 6
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


def twopath_form(recurrence: Recurrence) -> TwoPathForm:
    """(C5) from ADMM's recurrence: α_t, β_t are the first path's weights of z'_t and z_t."""
    unrolled = unroll_accumulators(recurrence)
    if len(unrolled.updates) != 2:
        raise UserError(f"{recurrence.name}: the two-path conv form needs two streams")
    first, second = unrolled.updates
    t_terms = [t for t in first.terms if t.is_t]
    if len(t_terms) != 1:
        raise UserError(f"{recurrence.name}: the two-path form needs one T-term per path")
    states = [t for t in first.terms if not t.is_t]
    return TwoPathForm(per_source(states, first.stream), per_source(states, second.stream))


def engineering_form(recurrence: Recurrence) -> LaggedForm | DenseForm | TwoPathForm:
    """The form the algorithm's `engineering` field names (lagged unless it says dense/twopath)."""
    engineering = recurrence.algorithm.engineering
    if engineering == "dense":
        return dense_form(recurrence)
    if engineering == "twopath":
        return twopath_form(recurrence)
    return lagged_form(recurrence)


__all__ = [
    "DenseForm",
    "EngineeringCoefficient",
    "Invertibility",
    "LaggedForm",
    "Piece",
    "TwoPathForm",
    "dense_form",
    "engineering_form",
    "invertibility",
    "lagged_form",
    "lagged_invertibility",
    "per_source",
    "state_text",
    "term_lag",
    "twopath_form",
]
