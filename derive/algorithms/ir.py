"""The layer-recurrence IR: what the substitution x = Uz produces and the templates read.

Each z-space stream gets an update `z[k+1] = Σ terms`, where a term is
    coefficient · z_s[index]                      (a state, index k+1, k, k−1, … or j)
    coefficient · T(Σ coefficient · z_s[index])   (the layer map applied to a combination, which
                                                   may itself hold T-terms: ∇f(x − ∇f(x)))
    coefficient · u                               (the injected input, when the energy has a
                                                   linear term −⟨b, x⟩, b = Uu)
    Σ_{j=lo}^{hi} coefficient(j) · (either of the above at index j)   (an all-history term)
Coefficients are exact SymPy expressions in k, j, the algorithm's coefficients (β, κ) and its
schedules (θ_k, h_{k,j}); nothing is a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from derive.algorithms.schedules import Schedule, ScheduleTable
from derive.algorithms.spec import Algorithm, Coefficient
from derive.algorithms.symbols import INPUT, T, j, k, vector


@dataclass(frozen=True)
class StateRef:
    """z-space stream `stream` at iteration `index` (an expression in k or j)."""

    stream: str
    index: sp.Expr

    def lag(self) -> int | None:
        """k − index for indices of the form k − c (0 for z_k, 1 for z_{k−1}); None otherwise."""
        diff = sp.simplify(k - self.index)
        return int(diff) if diff.is_Integer else None

    def to_sympy(self) -> sp.Expr:
        return vector(self.stream)(self.index)


@dataclass(frozen=True)
class Term:
    """coefficient · state, coefficient · T(argument) or coefficient · u (the injected input),
    optionally summed over j = lo..hi."""

    coefficient: sp.Expr
    state: StateRef | None = None
    t_argument: tuple[Term, ...] | None = None
    history: tuple[sp.Expr, sp.Expr] | None = None  # (lo, hi) of Σ_j
    injected: bool = False  # the term is coefficient · u (neither state nor T)

    @property
    def is_t(self) -> bool:
        return self.t_argument is not None

    def body(self) -> sp.Expr:
        """The term without coefficient or sum, as SymPy: z(k - 1) or T(z(k) + β z(k) − …)."""
        if self.state is not None:
            return self.state.to_sympy()
        if self.injected:
            return INPUT
        assert self.t_argument is not None
        return T(combination_to_sympy(self.t_argument))

    def to_sympy(self) -> sp.Expr:
        expr = self.coefficient * self.body()
        if self.history is not None:
            lo, hi = self.history
            return sp.Sum(expr, (j, lo, hi))
        return expr

    def states(self) -> list[StateRef]:
        """Every state the term reads (inside T too)."""
        if self.state is not None:
            return [self.state]
        return [s for t in self.t_argument or () for s in t.states()]


def combination_to_sympy(terms: tuple[Term, ...]) -> sp.Expr:
    """Σ terms as one noncommutative SymPy expression."""
    return sp.Add(*(t.to_sympy() for t in terms))


@dataclass(frozen=True)
class StreamUpdate:
    """`stream[k+1] = Σ terms`; updates run in order, so later ones may read earlier streams at k+1."""

    stream: str
    terms: tuple[Term, ...]

    def to_sympy(self) -> sp.Expr:
        return combination_to_sympy(self.terms)


@dataclass(frozen=True)
class InitialCondition:
    """`stream[index] = Σ terms` before the first step (z_{−1} = z_0, μ_0 = 0, …)."""

    target: StateRef
    terms: tuple[Term, ...]


@dataclass(frozen=True)
class Recurrence:
    """The derived z-space recurrence of an algorithm: the IR that code generation reads."""

    algorithm: Algorithm
    updates: tuple[StreamUpdate, ...]
    initial: tuple[InitialCondition, ...]
    output: tuple[Term, ...]  # read at k = depth
    schedules: tuple[Schedule, ...]

    @property
    def name(self) -> str:
        return self.algorithm.name

    @property
    def coefficients(self) -> tuple[Coefficient, ...]:
        return self.algorithm.coefficients

    @property
    def input_stream(self) -> str:
        return self.algorithm.input_stream.z_name

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(u.stream for u in self.updates)

    def update(self, stream: str) -> StreamUpdate:
        return next(u for u in self.updates if u.stream == stream)

    def all_terms(self) -> list[Term]:
        return [t for u in self.updates for t in u.terms] + list(self.output)

    def has_input(self) -> bool:
        """True when the input u is injected somewhere (the recurrence was derived with an input)."""

        def injects(term: Term) -> bool:
            return term.injected or any(injects(t) for t in term.t_argument or ())

        return any(injects(t) for t in self.all_terms())

    def has_history(self) -> bool:
        """True when some update sums over all earlier iterates (AGD all-history form)."""
        return any(t.history is not None for t in self.all_terms())

    def max_lag(self) -> int:
        """The deepest look-back k − index among bounded terms (1 for heavy ball)."""
        lags = [s.lag() for t in self.all_terms() if t.history is None for s in t.states()]
        return max([0] + [lag for lag in lags if lag is not None])

    def coefficient_values(self, overrides: Mapping[str, sp.Expr] | None = None) -> dict:
        """{symbol: value} for every coefficient, defaults replaced by `overrides`."""
        values = {c.sym: c.default for c in self.coefficients}
        symbols = {c.name: c.sym for c in self.coefficients}
        for name, value in (overrides or {}).items():
            values[symbols.get(name, sp.Symbol(name, real=True))] = sp.sympify(value)
        for constant in self.algorithm.constants:  # in dependency order
            values[constant.sym] = constant.expr.subs(values)
        return values

    def unroll(
        self, steps: int, overrides: Mapping[str, sp.Expr] | None = None, *, exact: bool = True
    ) -> dict[str, list[sp.Expr]]:
        """Run the recurrence symbolically for `steps` steps from the input z_0 = input(0).

        Returns, for every stream, its values z_s[0..steps] as expressions in the input symbol
        `<input>(0)` (and the injected input u, if any) and T(...) applied to such expressions, with every coefficient and schedule
        replaced by its exact value. Tests compare this with the papers' printed recurrences and
        with the optimizer; it is the one place where the IR is given meaning.
        """
        table = ScheduleTable(self.schedules, self.coefficient_values(overrides), exact=exact)
        values: dict[tuple[str, int], sp.Expr] = {}
        z0 = vector(self.input_stream)(0)
        values[(self.input_stream, 0)] = z0
        for condition in self.initial:
            idx = int(condition.target.index)
            values[(condition.target.stream, idx)] = self._evaluate(
                condition.terms, 0, table, values
            )
        for step in range(steps):
            for update in self.updates:
                values[(update.stream, step + 1)] = self._evaluate(
                    update.terms, step, table, values
                )
        return {
            s: [values[(s, i)] for i in range(steps + 1) if (s, i) in values] for s in self.streams
        }

    def _evaluate(
        self,
        terms: tuple[Term, ...],
        step: int,
        table: ScheduleTable,
        values: Mapping[tuple[str, int], sp.Expr],
    ) -> sp.Expr:
        total = sp.Integer(0)
        for term in terms:
            if term.history is None:
                total += table.evaluate(term.coefficient, k=step) * self._body(
                    term, step, None, values, table
                )
                continue
            lo, hi = (int(sp.sympify(b).subs(k, step)) for b in term.history)
            for jj in range(lo, hi + 1):
                coefficient = table.evaluate(term.coefficient, k=step, j=jj)
                if coefficient != 0:
                    total += coefficient * self._body(term, step, jj, values, table)
        return sp.expand(total)

    def _body(
        self,
        term: Term,
        step: int,
        jj: int | None,
        values: Mapping[tuple[str, int], sp.Expr],
        table: ScheduleTable,
    ) -> sp.Expr:
        def lookup(ref: StateRef) -> sp.Expr:
            index = ref.index.subs({k: step, j: jj if jj is not None else j})
            return values[(ref.stream, int(index))]

        if term.state is not None:
            return lookup(term.state)
        if term.injected:
            return INPUT
        argument = sp.Integer(0)
        for inner in term.t_argument or ():
            c = table.evaluate(inner.coefficient, k=step, j=jj if jj is not None else j)
            if inner.state is not None:
                argument += c * lookup(inner.state)
            elif inner.injected:
                argument += c * INPUT
            else:  # a gradient at a point that is itself a gradient step: T inside T
                argument += c * self._body(inner, step, jj, values, table)
        return T(sp.expand(argument))


def unroll_accumulators(recurrence: Recurrence) -> Recurrence:
    """Replace every accumulator stream by its sum over the history.

    A stream s with s_{k+1} = s_k + Σ c·v_{k+1} (v other streams, c constant) and s_0 = 0 equals
    Σ_{j=1}^{k} Σ c·v_j. ADMM's μ (the z-image of λ) is one: unrolling it turns the derived
    recurrence into the form SCIS (13) prints, with Σ_{t=1}^{k} (z'_t − z_t).
    """
    zero_start = {
        c.target.stream for c in recurrence.initial if not c.terms and c.target.index == 0
    }
    sums: dict[str, tuple[Term, ...]] = {}
    for update in recurrence.updates:
        if update.stream not in zero_start:
            continue
        own = [t for t in update.terms if t.state == StateRef(update.stream, k)]
        rest = [t for t in update.terms if t not in own]
        if (
            len(own) == 1
            and own[0].coefficient == 1
            and rest
            and all(
                not t.is_t
                and t.history is None
                and t.state is not None
                and t.state.index == k + 1
                and not t.coefficient.has(k)
                for t in rest
            )
        ):
            sums[update.stream] = tuple(
                Term(t.coefficient, StateRef(t.state.stream, j), history=(sp.Integer(1), k))  # type: ignore[union-attr]
                for t in rest
            )

    def replace(terms: tuple[Term, ...]) -> tuple[Term, ...]:
        out: list[Term] = []
        for term in terms:
            if term.state is not None and term.state.stream in sums and term.history is None:
                if term.state.index != k:
                    raise ValueError(f"cannot unroll {term.state} (only the current value)")
                out += [
                    Term(term.coefficient * s.coefficient, s.state, history=s.history)
                    for s in sums[term.state.stream]
                ]
            else:
                out.append(term)
        return tuple(out)

    return Recurrence(
        algorithm=recurrence.algorithm,
        updates=tuple(
            StreamUpdate(u.stream, replace(u.terms))
            for u in recurrence.updates
            if u.stream not in sums
        ),
        initial=tuple(c for c in recurrence.initial if c.target.stream not in sums),
        output=replace(recurrence.output),
        schedules=recurrence.schedules,
    )
