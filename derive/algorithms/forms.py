"""The shape of a derived recurrence: which terms, lags and coefficients (a pass over the IR).

The papers relax a derived recurrence in two steps (SCIS appendix C): Φ(W·) becomes a learnable
block T_k, and every coefficient becomes a constant that may be kept, learned or pruned. Before
either, one has to read off the recurrence *what it is made of*; that reading lives here, beside the
IR, because several stages use it:

- code generation (`derive.codegen.conv`) prints the engineering forms;
- NAS search spaces (`derive.nas.spaces`) turn each term into a mixed edge, reading a recurrence
  as one stream's own look-back (`LookBack`: `lagged_lookback`, or `streams_lookback`, which writes
  the other streams in that stream's states) or as its all-history terms (`dense_shape`);
- reversibility (`invertibility`) reads whether the oldest state enters linearly.

Four shapes are recognised:

- lagged: one stream, one T-term and a bounded look-back,
  z_{k+1} = α T_k(Σ_l γ_l z_{k−l}) + Σ_l β_l z_{k−l}; heavy ball gives (C1) (T(z_k) + β₁z_k + β₂z_{k−1}),
  Nesterov gives (C2) (T(β₁z_k + β₂z_{k−1}));
- dense: the all-history form (12), z_{k+1} = Σ_j a_{k+1,j} T(z_j) + Σ_j s_{k+1,j} z_j ((C3)/(C6));
- multi-stream: any other recurrence, several streams and T evaluations read as one block per step
  (`streams_form`; QHM, extragradient, heavy ball with a velocity), a state read k + 1, k, k − 1, …
  or summed over a stream's whole history (Σ_j w(k, j)·s_j: an accumulator such as ADMM's μ,
  unrolled by `unroll_accumulators`).

`c5_form` is one pass over a multi-stream form: SCIS appendix C's (C5) for ADMM (13), the papers'
network, in which both paths add the first path's history sums.

Everything here is exact SymPy; nothing is printed as code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.algorithms.ir import (
    Recurrence,
    StateRef,
    Term,
    combination_to_sympy,
    unroll_accumulators,
)
from derive.algorithms.render import UnicodePrinter, names_of
from derive.algorithms.schedules import ScheduleTable
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
                _coefficient(
                    f"{inner_name}{lag + 1}",
                    inner_symbol,
                    "inner",
                    lag,
                    term.coefficient,
                )
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
    try:
        form = engineering_form(recurrence)
    except UserError as exc:
        return Invertibility(False, str(exc))
    if isinstance(form, StreamsForm) and form.history_streams():
        summed = ", ".join(form.symbols().get(s, s) for s in form.history_streams())
        return Invertibility(
            False,
            f"the {form.label} form sums over every earlier state of {summed} (a history term), "
            "so a stage keeps them all anyway and there is no inverse step that saves memory",
        )
    if isinstance(form, StreamsForm):
        return Invertibility(
            False,
            f"the {STREAMS_LABEL} form keeps {_count(len(form.streams), 'stream')} and "
            f"{_count(form.t_evaluations(), 'T evaluation')} per block; an inverse step is derived "
            "for the one-stream lagged form only",
        )
    assert isinstance(form, LaggedForm)
    return lagged_invertibility(recurrence, form)


def _count(n: int, noun: str) -> str:
    """1 stream, 2 streams."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def lagged_invertibility(recurrence: Recurrence, form: LaggedForm) -> Invertibility:
    """The invertibility rule of `Invertibility` applied to a lagged form."""

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
    form = dense_shape(recurrence)
    _check_block_input_leaves(recurrence, form.state)
    return form


def dense_shape(recurrence: Recurrence) -> DenseForm:
    """The terms of an all-history recurrence: one Σ_{j=0}^{k} a(k, j)·T(z_j) and the state pieces.

    `dense_form` adds what the conv block needs on top (the block input out of the state sum);
    a NAS search space, whose coefficients are relaxed into the edge normalisation, reads this.
    """
    if len(recurrence.updates) != 1:
        raise UserError(f"{recurrence.name}: the dense conv form needs a single stream")
    (update,) = recurrence.updates
    stream = update.stream
    t_terms = [t for t in update.terms if t.is_t]
    if (
        len(t_terms) != 1
        or t_terms[0].history != (0, k)
        or t_terms[0].t_argument != (Term(sp.Integer(1), StateRef(stream, j)),)
    ):
        raise UserError(
            f"{recurrence.name}: the dense conv form needs one Σ_(j=0..k) a_(k+1,j) T(z_j) term"
        )
    state = per_source([t for t in update.terms if not t.is_t], stream)
    return DenseForm(t_terms[0].coefficient, state)


def _check_block_input_leaves(
    recurrence: Recurrence, state: tuple[Piece, ...], steps: int = 6
) -> None:
    """The dense block input z_0 has other channels than z_1, z_2, …: its state weight must be 0.

    For SCIS (5) it is: h_{1,0} = 1 cancels z_0 at k = 0, and h_{k+1,0} = 0 for k ≥ 1 because
    h_{2,0} = β_2(h_{1,0} − 1) = 0 (induction). Checked exactly for the first `steps` layers (exact
    θ_k grow threefold per step); the generated stage checks every layer numerically.
    """

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


def engineering_form(recurrence: Recurrence) -> LaggedForm | DenseForm | StreamsForm:
    """The form the algorithm's `engineering` field names (dense; c5: the multi-stream form with
    the `c5_form` pass); otherwise the lagged form (C1)/(C2) when the recurrence has its shape,
    else the multi-stream form, every accumulator unrolled into a history sum.
    """
    engineering = recurrence.algorithm.engineering
    if engineering == "dense":
        return dense_form(recurrence)
    if engineering == "c5":
        return c5_form(streams_form(unroll_accumulators(recurrence)))
    if fits_lagged(recurrence):
        return lagged_form(recurrence)
    return streams_form(unroll_accumulators(recurrence))


__all__ = [
    "Branch",
    "DenseForm",
    "Source",
    "StreamStart",
    "StreamsForm",
    "WeightedSource",
    "LookBack",
    "dense_shape",
    "lagged_lookback",
    "streams_lookback",
    "fits_lagged",
    "streams_form",
    "EngineeringCoefficient",
    "Invertibility",
    "LaggedForm",
    "Piece",
    "dense_form",
    "engineering_form",
    "invertibility",
    "lagged_form",
    "lagged_invertibility",
    "per_source",
    "state_text",
    "term_lag",
    "C5_LABEL",
    "c5_form",
]


# ------------------------------------------------------------------ the multi-stream form

STREAMS_LABEL = "multi-stream"


@dataclass(frozen=True)
class Source:
    """What a coefficient of the multi-stream form multiplies.

    A state: stream `name` at k − `lag` (lag −1 is the value this block has just computed, k + 1).
    A T output: branch `name` of this block (`lag` 0) or of the block `lag` blocks back (cached).
    A history: every state of stream `name` so far, s_0 … s_k (`lag` 0), which its coefficient,
    a function of k and j, weighs as Σ_j w(k, j)·s_j.
    """

    kind: str  # "state", "t" or "history"
    name: str  # the stream's z-name, or the branch's attribute name
    lag: int

    def text(self, symbols: dict[str, str]) -> str:
        """zₖ, z_mₖ₊₁, T₁ₖ₋₁, Σⱼ z'ⱼ … in Unicode (`symbols` names each branch T₁, T₂, …)."""
        if self.kind == "history":
            return f"Σⱼ {symbols.get(self.name, self.name)}ⱼ"
        if self.kind == "t":
            base = symbols[self.name] + "ₖ"
        else:
            base = symbols.get(self.name, self.name) + "ₖ"
        if self.lag == -1:
            return base + "₊₁"
        return base if self.lag == 0 else base + "₋" + str(self.lag).translate(_SUBSCRIPTS)


@dataclass(frozen=True)
class WeightedSource:
    """One relaxed coefficient and what it multiplies; no coefficient: 1, absorbed by a learnable T."""

    coefficient: EngineeringCoefficient | None
    source: Source


@dataclass(frozen=True)
class StreamStart:
    """A stream as a stage keeps it: `lags` of its states, restarted at `start` ("input" or "zero");
    with `history`, every state since the stage's start (a history term reads them all)."""

    name: str
    lags: int
    start: str
    history: bool = False


@dataclass(frozen=True)
class Branch:
    """One T evaluation per block: T applied to a combination of states (or to one state alone).

    `reads_input`: at the stage's first block T reads the stage input itself (every state its
    argument reads is then z₀ or 0), so its first convolution carries the stride; otherwise it reads
    states of the new resolution. `cached`: how many earlier blocks' outputs the updates reuse.
    """

    name: str  # the block's attribute: branch, branch2, …
    symbol: str  # T₁, T₂, …
    argument: tuple[WeightedSource, ...]
    identity: bool  # one state with coefficient 1: no coefficient inside T
    reads_input: bool
    cached: int

    def text(
        self,
        symbols: dict[str, str],
        back: int = 0,
        branches: dict[str, Branch] | None = None,
    ) -> str:
        """T₁(zₖ) or T₂(t2_z·zₖ + t2_z_m·z_mₖ); `back` blocks earlier: T₁(zₖ₋₁) of block k − 1.
        With `branches`, a T inside T is shown with its own argument: T₂(T₁(zₖ))."""

        def shown(w: WeightedSource) -> str:
            if w.source.kind == "t" and branches and not w.source.lag:
                return branches[w.source.name].text(symbols, back, branches).split(" of block")[0]
            return Source(w.source.kind, w.source.name, w.source.lag + back).text(symbols)

        if self.identity:
            inner = shown(self.argument[0])
        else:
            inner = " + ".join(f"{w.coefficient.name}·{shown(w)}" for w in self.argument)
        block = f" of block k − {back}" if back else ""
        return f"{self.symbol}({inner}){block}"


@dataclass(frozen=True)
class StreamsForm:
    """Any bounded look-back recurrence, as one block per step (SCIS appendix C, mechanically).

    Every T-term is a learnable block (`branches`; a gradient at an earlier iterate reuses that
    block's output), every coefficient is fixed, learnable or pruned, every state is a stream the
    stage carries from block to block; `output` is the stage's readout Σ c·s_{K−lag}. ρ follows the
    update of each stream in `activated` (none named: the input stream's alone). Updates may share a
    coefficient (the same name: one constant or parameter of the block).
    """

    streams: tuple[StreamStart, ...]
    branches: tuple[Branch, ...]
    updates: tuple[tuple[str, tuple[WeightedSource, ...]], ...]
    output: tuple[tuple[str, int, sp.Expr], ...]
    label: str = STREAMS_LABEL
    display: tuple[tuple[str, str], ...] = ()  # (stream, how equations print it: zₘ for zm)
    activated: tuple[str, ...] = ()

    @property
    def coefficients(self) -> tuple[EngineeringCoefficient, ...]:
        inner = [w.coefficient for b in self.branches if not b.identity for w in b.argument]
        outer = [w.coefficient for _, terms in self.updates for w in terms]
        unique = {c.name: c for c in inner + outer if c is not None}
        return tuple(unique.values())

    def history_streams(self) -> tuple[str, ...]:
        """The streams a history term sums over (the stage keeps every state of them)."""
        return tuple(s.name for s in self.streams if s.history)

    def symbols(self) -> dict[str, str]:
        """How text prints each branch (T₁, T₂, …) and each stream (z, zₘ, …)."""
        return {**dict(self.display), **{b.name: b.symbol for b in self.branches}}

    def t_evaluations(self) -> int:
        """How many times a block applies T (a reused earlier output costs nothing)."""
        return len(self.branches)

    def equations(self) -> list[str]:
        """One line per stream: zₖ₊₁ = z_t1·T₁(zₖ) + z_z·zₖ + …, in Unicode."""
        symbols = self.symbols()
        by_name = {b.name: b for b in self.branches}
        lines = []
        for stream, terms in self.updates:
            parts = []
            for w in terms:
                if w.source.kind == "t":
                    operand = by_name[w.source.name].text(symbols, w.source.lag, by_name)
                else:
                    operand = w.source.text(symbols)
                parts.append(
                    operand if w.coefficient is None else f"{w.coefficient.name}·{operand}"
                )
            lines.append(f"{symbols.get(stream, stream)}ₖ₊₁ = " + " + ".join(parts))
        return lines


def _source_name(source: Source, symbols: dict[str, str]) -> str:
    """A Python name for what a coefficient multiplies: z, z_m_next, z_lag1, t1, t1_lag1, z_sum."""
    base = source.name if source.kind != "t" else symbols[source.name].lower()
    base = base.translate(str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789"))
    if source.kind == "history":
        return base + "_sum"
    if source.lag == -1:
        return base + "_next"
    return base if source.lag == 0 else f"{base}_lag{source.lag}"


def _ref_lag(recurrence: Recurrence, ref: StateRef, where: Term) -> int:
    """k − index of a state the multi-stream form reads: −1 (this block's new value), 0, 1, …"""
    diff = sp.simplify(k - ref.index)
    if not diff.is_Integer or int(diff) < -1:
        raise UserError(
            f"{recurrence.name}: no conv block reads {ref.to_sympy()} in {where.to_sympy()}: "
            "a block reads states at k + 1 (computed earlier in the block), k, k − 1, …"
        )
    return int(diff)


Argument = tuple
"""A T argument as (key, lag, coefficient) entries: key a stream's name (the state at k − lag), or
("T", argument) for a gradient at a point that is itself a gradient step (∇f(x − ∇f(x)))."""


def _argument(recurrence: Recurrence, term: Term) -> Argument:
    """The argument of the T-term `term`, nested T-terms included."""
    entries = []
    for inner in term.t_argument or ():
        if inner.state is not None:
            lag = _ref_lag(recurrence, inner.state, term)
            entries.append((inner.state.stream, lag, inner.coefficient))
        else:
            entries.append((("T", _argument(recurrence, inner)), 0, inner.coefficient))
    return tuple(entries)


def _shifted(argument: Argument, by: int) -> Argument:
    """The argument `by` blocks earlier: every lag grows by `by`, coefficients read k − `by`."""
    return tuple(
        (
            key if isinstance(key, str) else ("T", _shifted(key[1], by)),
            lag + by if isinstance(key, str) else 0,
            sp.sympify(c).subs(k, k - by),
        )
        for key, lag, c in argument
    )


def _same_argument(a: Argument, b: Argument) -> bool:
    """True when two T arguments are the same combination (coefficients compared exactly)."""
    if len(a) != len(b):
        return False
    unmatched = list(b)
    for key, lag, c in a:
        match = next(
            (
                e
                for e in unmatched
                if _same_key(key, e[0]) and lag == e[1] and sp.simplify(c - e[2]) == 0
            ),
            None,
        )
        if match is None:
            return False
        unmatched.remove(match)
    return True


def _same_key(a: object, b: object) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return _same_argument(a[1], b[1])  # type: ignore[index]


def _newest(argument: Argument) -> int:
    """The smallest lag the argument reads (−1: a state of this block), nested T-terms included."""
    return min(lag if isinstance(key, str) else _newest(key[1]) for key, lag, _ in argument)


def _collect_arguments(recurrence: Recurrence, term: Term, found: list[Argument]) -> None:
    """Add the distinct T arguments of `term` to `found`, a nested T before the T around it."""
    for inner in term.t_argument or ():
        if inner.is_t:
            _collect_arguments(recurrence, inner, found)
    argument = _argument(recurrence, term)
    if not any(_same_argument(argument, a) for a in found):
        found.append(argument)


def _stream_starts(recurrence: Recurrence) -> dict[str, str]:
    """How each stream restarts at a stage's first block: "input" (z₀), "zero" or "unset"."""
    starts = {s: "unset" for s in recurrence.streams}
    starts[recurrence.input_stream] = "input"
    for condition in recurrence.initial:
        stream, index = condition.target.stream, int(condition.target.index)
        terms = condition.terms
        if not terms:
            value = "zero"
        elif (
            len(terms) == 1
            and terms[0].coefficient == 1
            and terms[0].state is not None
            and int(terms[0].state.index) == 0
            and starts.get(terms[0].state.stream) in ("input", "zero")
        ):
            value = starts[terms[0].state.stream]
        else:
            shown = combination_to_sympy(condition.terms)
            raise UserError(
                f"{recurrence.name}: the conv forms restart every stream at the stage input or at "
                f"0, not at {condition.target.to_sympy()} = {shown}"
            )
        if index == 0:
            starts[stream] = value
        elif value != starts.get(stream, value) and starts.get(stream) != "unset":
            raise UserError(
                f"{recurrence.name}: the conv forms restart every stream's past at its value at "
                f"k = 0, not at {condition.target.to_sympy()} = {combination_to_sympy(terms)}"
            )
    return starts


Reuse = tuple[Argument, int, int]
"""A T argument of the recurrence, the base branch that computes it and how many blocks back."""


@dataclass
class _BlockReading:
    """What reading a recurrence as one block carries from step to step."""

    recurrence: Recurrence
    starts: dict[str, str]  # how each stream restarts (`_stream_starts`)
    reuse: list[Reuse]
    names: list[str]  # the branches' attribute names, base by base
    symbols: dict[str, str]  # branch name → T₁, T₂, …
    lags_read: dict[str, int]  # the deepest look-back read so far, stream by stream
    written: set[str] = field(default_factory=set)  # streams whose k + 1 value is computed

    def t_source(self, argument: Argument) -> Source:
        """The branch output (this block's or a cached earlier one) that T(`argument`) is."""
        _, base, back = next(r for r in self.reuse if _same_argument(r[0], argument))
        return Source("t", self.names[base], back)

    def note(self, sources: tuple[WeightedSource, ...]) -> None:
        for w in sources:
            _note_read(self.recurrence, w.source, self.written, self.lags_read, self.starts)


def streams_form(recurrence: Recurrence) -> StreamsForm:
    """Read a recurrence (several streams, several T-terms) as a block.

    A state term reads a stream at k + 1 (computed earlier in the block), k, k − 1, …; a history
    term Σ_{j=lo}^{k} c(k, j)·s_j reads every state of s so far (weights w(k, j) = c·[j ≥ lo]).
    Raises UserError naming the term no block shape expresses (a T over the whole history, a state
    read further ahead than this block's new values, a T-term in the output).
    """
    _refuse_history_terms(recurrence)
    starts = _stream_starts(recurrence)
    bases, reuse = _branch_bases(recurrence)
    names = ["branch" if i == 0 else f"branch{i + 1}" for i in range(len(bases))]
    symbols = {n: "T" + str(i + 1).translate(_SUBSCRIPTS) for i, n in enumerate(names)}
    lags_read = {s: 0 for s in recurrence.streams}
    reading = _BlockReading(recurrence, starts, reuse, names, symbols, lags_read)
    updates = _stream_updates(reading)
    branches = _branches(reading, bases)
    output = _readout(recurrence, lags_read)
    _check_set_before_read(recurrence, starts, updates, branches)
    summed = {w.source.name for _, terms in updates for w in terms if w.source.kind == "history"}
    streams = tuple(
        StreamStart(s, lags_read[s] + 1, "zero" if starts[s] == "zero" else "input", s in summed)
        for s in recurrence.streams
    )
    display = tuple((s.z_name, s.z_symbol) for s in recurrence.algorithm.streams)
    return StreamsForm(streams, tuple(branches), tuple(updates), tuple(output), display=display)


def _refuse_history_terms(recurrence: Recurrence) -> None:
    """UserError for a history term other than Σ_{j=lo}^{k} c·s_j in an update: a T over the
    whole history (the dense form's), a sum inside T or one that reads past k."""
    for update in recurrence.updates:
        for term in update.terms:
            inner = [t for t in term.t_argument or () if t.history is not None]
            if term.history is None and not inner:
                continue
            if inner or term.is_t:
                raise UserError(
                    f"{recurrence.name}: the all-history term {term.to_sympy()} applies T over "
                    "every earlier state; only the dense form (one stream, Σ_j a(k, j)·T(z_j)) "
                    "has such a block"
                )
            lo, hi = term.history
            if sp.simplify(hi - k) != 0 or not sp.sympify(lo).is_Integer or int(lo) < 0:
                raise UserError(
                    f"{recurrence.name}: the history term {term.to_sympy()} must run from a fixed "
                    "j ≥ 0 to k (the states a block has)"
                )


def _history_weight(term: Term) -> sp.Expr:
    """w(k, j) of a history term Σ_{j=lo}^{k} c·s_j: c·[j ≥ lo], for j = 0 … k."""
    lo = int(term.history[0])  # type: ignore[index]
    if lo == 0:
        return term.coefficient
    return sp.Piecewise((term.coefficient, j >= lo), (0, True))


def _branch_bases(recurrence: Recurrence) -> tuple[list[Argument], list[Reuse]]:
    """The distinct T arguments a block computes (bases) and, for every T argument, its base.

    An argument that is a base `back` blocks earlier (coefficients shifted exactly) reuses that
    block's output. Bases are numbered by the first use of any argument they compute.
    """
    arguments: list[Argument] = []  # distinct T arguments, in order of first use
    for update in recurrence.updates:
        for term in update.terms:
            if term.is_t:
                _collect_arguments(recurrence, term, arguments)
    order = list(arguments)  # first use, which names the branches
    arguments.sort(key=_newest)  # newest first: bases before reuses (stable: inner T first)
    bases: list[Argument] = []
    reuse: list[Reuse] = []
    for arg in arguments:
        found = _earlier_base(bases, arg)
        if found is None:
            bases.append(arg)
            reuse.append((arg, len(bases) - 1, 0))
        else:
            reuse.append((arg, *found))
    first_use = [min(order.index(a) for a, b, _ in reuse if b == i) for i in range(len(bases))]
    renumber = sorted(range(len(bases)), key=first_use.__getitem__)
    return [bases[i] for i in renumber], [(a, renumber.index(b), back) for a, b, back in reuse]


def _earlier_base(bases: list[Argument], argument: Argument) -> tuple[int, int] | None:
    """(base index, blocks back) when `argument` is a base 1 … 16 blocks earlier, else None."""
    return next(
        (
            (i, back)
            for i, base in enumerate(bases)
            for back in range(1, 17)
            if _same_argument(_shifted(base, back), argument)
        ),
        None,
    )


def _stream_updates(
    reading: _BlockReading,
) -> list[tuple[str, tuple[WeightedSource, ...]]]:
    """Every stream's update as relaxed coefficients times states and branch outputs."""
    recurrence = reading.recurrence
    updates = []
    for update in recurrence.updates:
        terms = []
        summed: dict[str, sp.Expr] = {}  # history weights, stream by stream
        for term in update.terms:
            if term.history is not None:
                assert term.state is not None
                weight = summed.get(term.state.stream, sp.Integer(0)) + _history_weight(term)
                summed[term.state.stream] = weight
                continue
            if term.is_t:
                source = reading.t_source(_argument(recurrence, term))
            else:
                assert term.state is not None
                source = Source("state", term.state.stream, _ref_lag(recurrence, term.state, term))
            name = f"{update.stream}_{_source_name(source, reading.symbols)}"
            terms.append(
                WeightedSource(
                    _coefficient(name, name, "outer", source.lag, term.coefficient),
                    source,
                )
            )
        for stream, weight in summed.items():
            source = Source("history", stream, 0)
            name = f"{update.stream}_{_source_name(source, reading.symbols)}"
            terms.append(WeightedSource(_coefficient(name, name, "history", None, weight), source))
        updates.append((update.stream, tuple(terms)))
        reading.note(tuple(terms))
        reading.written.add(update.stream)
    return updates


def _branches(reading: _BlockReading, bases: list[Argument]) -> list[Branch]:
    """One Branch per base: its argument's relaxed coefficients, stride and cache depth."""
    branches = []
    for i, base in enumerate(bases):
        argument = []
        for key, lag, coefficient in base:
            source = Source("state", key, lag) if isinstance(key, str) else reading.t_source(key[1])
            name = f"t{i + 1}_{_source_name(source, reading.symbols)}"
            argument.append(
                WeightedSource(_coefficient(name, name, "inner", lag, coefficient), source)
            )
        identity = len(argument) == 1 and sp.simplify(argument[0].coefficient.expr - 1) == 0
        reads_input = all(w.source.kind == "state" and w.source.lag >= 0 for w in argument) and any(
            reading.starts[w.source.name] == "input" for w in argument
        )
        cached = max([back for _, b, back in reading.reuse if b == i] + [0])
        name = reading.names[i]
        branches.append(
            Branch(
                name,
                reading.symbols[name],
                tuple(argument),
                identity,
                reads_input,
                cached,
            )
        )
        reading.note(tuple(argument))
    return branches


def _readout(recurrence: Recurrence, lags_read: dict[str, int]) -> list[tuple[str, int, sp.Expr]]:
    """The stage's output Σ c·s_{K−lag} as (stream, lag, c); it deepens the look-back it reads."""
    output = []
    for term in recurrence.output:
        if term.state is None:
            raise UserError(
                f"{recurrence.name}: the output {term.to_sympy()} applies T; a stage reads out a "
                "combination of states"
            )
        lag = _ref_lag(recurrence, term.state, term)
        if lag < 0:
            raise UserError(f"{recurrence.name}: cannot read out {term.to_sympy()}")
        output.append((term.state.stream, lag, term.coefficient))
        lags_read[term.state.stream] = max(lags_read[term.state.stream], lag)
    return output


def _check_set_before_read(
    recurrence: Recurrence,
    starts: dict[str, str],
    updates: list[tuple[str, tuple[WeightedSource, ...]]],
    branches: list[Branch],
) -> None:
    """UserError when a stream with no restart value is read at k or earlier."""
    read = [t for _, t in updates] + [b.argument for b in branches]
    for stream, start in starts.items():
        if start == "unset" and any(
            w.source.kind in ("state", "history") and w.source.name == stream and w.source.lag >= 0
            for terms in read
            for w in terms
        ):
            raise UserError(f"{recurrence.name}: stream {stream} is read before it has a value")


def _note_read(
    recurrence: Recurrence,
    source: Source,
    written: set[str],
    lags_read: dict[str, int],
    starts: dict[str, str],
) -> None:
    """Record the look-back a state read needs; a new value (k + 1) must be computed already."""
    if source.kind != "state":
        return
    if source.lag == -1 and source.name not in written:
        raise UserError(
            f"{recurrence.name}: {source.name}ₖ₊₁ is read before its update; order the updates so "
            "that each reads only streams updated before it"
        )
    lags_read[source.name] = max(lags_read[source.name], source.lag)


C5_LABEL = "(C5)"


def c5_form(form: StreamsForm) -> StreamsForm:
    """SCIS appendix C's (C5), the papers' network for ADMM, from the multi-stream form of (13).

    Two paths, each applying its own T to its own stream (the ½ in front of T absorbed by the
    learnable T), both adding the first path's history sums Σ_j α(k, j)·z′_j + Σ_j β(k, j)·z_j,
    its look-back terms folded in at j = k − lag (its zₖ term: β gains ½·[j = k]); ρ after each
    path's sum, both streams restarting at the stage input (both T of the first block read it),
    the stage returning (z′_K + z_K)/2. UserError for a form without two such paths.
    """
    shape = "two streams that start at the input, each update one T of its own stream's zₖ"
    if len(form.updates) != 2 or any(s.start != "input" for s in form.streams):
        raise UserError(f"the (C5) form needs {shape}")
    (first, first_terms), (second, _) = form.updates
    branches = {b.name: b for b in form.branches}
    for stream, terms in form.updates:
        t_terms = [w for w in terms if w.source.kind == "t"]
        argument = branches[t_terms[0].source.name].argument if len(t_terms) == 1 else ()
        if len(argument) != 1 or argument[0].source != Source("state", stream, 0):
            raise UserError(f"the (C5) form needs {shape}")
    weights = {first: sp.Integer(0), second: sp.Integer(0)}
    for w in first_terms:
        assert w.coefficient is not None
        if w.source.kind == "history":
            weights[w.source.name] += w.coefficient.expr
        elif w.source.kind == "state" and w.source.lag >= 0:
            at = sp.Eq(j, k - w.source.lag)
            weights[w.source.name] += sp.Piecewise((w.coefficient.expr, at), (0, True))
        elif w.source.kind == "state":
            raise UserError(f"the (C5) form's first path reads {first}ₖ₊₁: {shape}")
    shared = (
        WeightedSource(
            _coefficient("alpha", "α", "history", None, weights[first]),
            Source("history", first, 0),
        ),
        WeightedSource(
            _coefficient("beta", "β", "history", None, weights[second]),
            Source("history", second, 0),
        ),
    )
    paths = ((first, "branch_prime", "T′"), (second, "branch", "T"))
    half = sp.Rational(1, 2)
    return StreamsForm(
        streams=tuple(StreamStart(s, 1, "input", history=True) for s, _, _ in paths),
        branches=tuple(
            Branch(name, symbol, (WeightedSource(None, Source("state", s, 0)),), True, True, 0)
            for s, name, symbol in paths
        ),
        updates=tuple(
            (s, (WeightedSource(None, Source("t", name, 0)), *shared)) for s, name, _ in paths
        ),
        output=((first, 0, half), (second, 0, half)),
        label=C5_LABEL,
        display=form.display,
        activated=(first, second),
    )


def fits_lagged(recurrence: Recurrence) -> bool:
    """True when the recurrence has the (C1)/(C2) shape: one stream, one T-term, bounded look-back."""
    if len(recurrence.updates) != 1 or recurrence.has_history():
        return False
    t_terms = [t for t in recurrence.updates[0].terms if t.is_t]
    return len(t_terms) == 1 and all(
        inner.state is not None for inner in t_terms[0].t_argument or ()
    )


# ------------------------------------------------------------------ one stream's own look-back

Combination = dict[Source, sp.Expr]
"""Σ coefficient·source: states (stream, lag) and branch outputs (branch, blocks back)."""

_MAX_SUBSTITUTIONS = 32


@dataclass(frozen=True)
class LookBack:
    """One stream's update written with its own states only: s_{k+1} = Σ c·T(Σ_l γ_l·s_{k−l}) + Σ_l β_l·s_{k−l}.

    `t_terms` holds (c, ((l, γ_l), …)) per T evaluation, a cached earlier block's T already shifted
    to its own lags and coefficients; `state_terms` holds (l, β_l). `eliminated` names the other
    streams, written out in `stream`'s states by the block's own equations (`streams_lookback`).
    """

    stream: str
    t_terms: tuple[tuple[sp.Expr, tuple[tuple[int, sp.Expr], ...]], ...]
    state_terms: tuple[tuple[int, sp.Expr], ...]
    eliminated: tuple[str, ...] = ()


def lagged_lookback(recurrence: Recurrence, form: LaggedForm) -> LookBack:
    """The lagged form (C1)/(C2) as a look-back: α·T(Σ γ_l z_{k−l}) and its β_l z_{k−l}."""
    t = form.by_role("t")
    alpha = t[0].expr if t else sp.Integer(1)
    inner = (
        ((0, sp.Integer(1)),)
        if form.inner_identity
        else tuple((c.lag, c.expr) for c in form.by_role("inner"))
    )
    states = tuple((c.lag, c.expr) for c in form.by_role("outer"))  # type: ignore[misc]
    return LookBack(recurrence.updates[0].stream, ((alpha, inner),), states)


def streams_lookback(
    recurrence: Recurrence, form: StreamsForm, stream: str | None = None
) -> LookBack:
    """Write `stream`'s update (default: the input stream) with its own states only.

    Every other stream is replaced, as long as it is read, by what the block's equations say it
    is: a value computed in this block by its update; an earlier value by its update in the block
    that computed it, when that update reads no other stream's past (a definition); otherwise
    by solving `stream`'s own update of an earlier block for it (QHM's momentum m_k from
    z_k = … − ν·m_k, heavy ball's velocity v_k = z_k − z_{k−1}). Each step is an identity of the
    iterates from the block on whose earlier equations it uses, so the result holds from block 1
    on; the stage's first block, which starts the other streams, is not part of it. UserError when
    a T would read another T's output (extragradient), a state of the same block, or the
    substitutions do not end.
    """
    node = stream or recurrence.input_stream
    updates = {s: _combination(terms) for s, terms in form.updates}
    values = recurrence.coefficient_values()
    writer = _StreamWriter(recurrence.name, node, updates, values)
    total = writer.written_out(updates[node], f"the update of {node}")
    symbols = form.symbols()
    arguments = {}
    for branch in form.branches:
        argument = writer.written_out(_combination(branch.argument), branch.text(symbols))
        if any(s.kind == "t" for s in argument):
            raise UserError(
                f"{recurrence.name}: {branch.text(symbols)} applies T to a T output once the other "
                f"streams are written in {node}'s states (a T of a T)"
            )
        if any(s.lag < 0 for s in argument):
            raise UserError(
                f"{recurrence.name}: {branch.text(symbols)} reads {node}ₖ₊₁, the state the block "
                f"computes, once the other streams are written in {node}'s states"
            )
        arguments[branch.name] = argument
    t_terms = []
    for source, c in total.items():
        if source.kind == "t":
            argument = _shift_combination(arguments[source.name], source.lag)
            t_terms.append((c, tuple((s.lag, g) for s, g in argument.items())))
    states = tuple(sorted((s.lag, c) for s, c in total.items() if s.kind == "state"))
    if any(lag < 0 for lag, _ in states):
        raise UserError(f"{recurrence.name}: the update of {node} reads {node}ₖ₊₁ itself")
    eliminated = tuple(s for s in recurrence.streams if s != node)
    return LookBack(node, tuple(t_terms), states, eliminated)


def _combination(terms: tuple[WeightedSource, ...]) -> Combination:
    """Σ coefficient·source of relaxed coefficients, equal sources added."""
    total: Combination = {}
    for w in terms:
        total[w.source] = total.get(w.source, sp.Integer(0)) + w.coefficient.expr
    return total


def _shift_combination(combination: Combination, by: int) -> Combination:
    """The same combination `by` blocks earlier: every lag grows by `by`, coefficients read k − by."""
    return {
        Source(s.kind, s.name, s.lag + by): sp.sympify(c).subs(k, k - by)
        for s, c in combination.items()
    }


@dataclass(frozen=True)
class _StreamWriter:
    """Replaces every other stream's state in a combination by what the block's equations give."""

    name: str  # the algorithm, for messages
    node: str
    updates: dict[str, Combination]
    values: dict

    def written_out(self, combination: Combination, what: str) -> Combination:
        """`combination` with no state of a stream other than `node`; zero coefficients dropped."""
        total = dict(combination)
        for _ in range(_MAX_SUBSTITUTIONS):
            total = {s: c for s, c in total.items() if sp.simplify(c) != 0}
            other = next((s for s in total if s.kind == "state" and s.name != self.node), None)
            if other is None:
                return total
            coefficient = total.pop(other)
            for source, c in self.value_of(other).items():
                total[source] = total.get(source, sp.Integer(0)) + coefficient * c
        raise UserError(
            f"{self.name}: {what} cannot be written in {self.node}'s states "
            f"({_MAX_SUBSTITUTIONS} substitutions of the other streams did not end)"
        )

    def value_of(self, state: Source) -> Combination:
        """What another stream's state is, by the block's equations (see `streams_lookback`)."""
        own = self.updates[state.name]
        if state.lag < 0:
            return own
        definition = not any(s.kind == "state" and s.name != self.node and s.lag >= 0 for s in own)
        solved = None if definition else self.solved_from_node(state)
        return solved if solved is not None else _shift_combination(own, state.lag + 1)

    def solved_from_node(self, state: Source) -> Combination | None:
        """`state` solved from the node's update of an earlier block, when it appears there once."""
        node_update = self.updates[self.node]
        lags = [s.lag for s in node_update if s.kind == "state" and s.name == state.name]
        if len(lags) != 1 or state.lag - lags[0] < 1:
            return None
        earlier = _shift_combination(node_update, state.lag - lags[0])
        divisor = sp.simplify(earlier.pop(state))
        if divisor == 0 or sp.simplify(divisor.subs(self.values)) == 0:
            raise UserError(
                f"{self.name}: {state.name} enters the update of {self.node} with coefficient "
                f"{divisor}, which is 0 at these coefficients, so {self.node}'s own states do not "
                f"determine it"
            )
        solved = {s: -c / divisor for s, c in earlier.items()}
        newer = Source("state", self.node, state.lag - lags[0] - 1)
        solved[newer] = solved.get(newer, sp.Integer(0)) + 1 / divisor
        return solved
