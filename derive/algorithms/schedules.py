"""Coefficient schedules: sequences such as θ_k, β_k and h_{k,j}, exact in SymPy.

A schedule is stated once as a rule (SymPy) that gives entry k (or (k, j)) from earlier entries
and from other schedules. `exact(...)` evaluates it with exact SymPy numbers (θ_k are nested
radicals, never floats); `numeric(...)` evaluates the same rule with mpmath at any precision; the
code generator prints the same rule as Python, so the generated network computes what was derived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from derive.algorithms.symbols import j, k


@dataclass(frozen=True)
class Schedule:
    """A sequence s_k (one index) or a triangle s_{k,j}, 0 ≤ j < k (two indices).

    `rule` gives s(k) (or s(k, j)) for k ≥ `start` in terms of earlier entries `s(k - 1, ...)`,
    other schedules and coefficient symbols; `initial` fixes the entries before `start`.
    """

    name: str
    rule: sp.Expr
    start: int = 0
    initial: Mapping[int, sp.Expr] = field(default_factory=dict)
    two_index: bool = False
    symbol: str = ""  # how to print it in equations, e.g. "θ_k"
    doc: str = ""
    code: str = (
        ""  # its table's variable in generated code when not `name` (user specs: "s_" + name)
    )

    @property
    def variable(self) -> str:
        """The Python name generated code holds the table in (its key stays `name`)."""
        return self.code or self.name

    @property
    def func(self) -> sp.FunctionClass:
        """The SymPy function that refers to this schedule inside expressions: theta(k)."""
        return sp.Function(self.name)

    def references(self) -> set[str]:
        """Names of the schedules that the rule refers to (itself included)."""
        return {
            a.func.__name__
            for a in self.rule.atoms(sp.core.function.AppliedUndef)
            if a.is_commutative
        }


def solve_implicit(relation: sp.Expr, unknown: sp.Expr, probe: Mapping[sp.Basic, float]) -> sp.Expr:
    """Solve `relation = 0` for `unknown` and keep the root in (0, 1] at the probe values.

    Used for Nesterov's θ_k, which the papers define implicitly by (1 − θ_k)/θ_k² = 1/θ_{k−1}².
    """
    placeholder = sp.Dummy("unknown", positive=True)
    roots = sp.solve(relation.subs(unknown, placeholder), placeholder, dict=False)
    good = []
    for root in roots:
        value = complex(sp.N(root.subs(probe)))
        if abs(value.imag) < 1e-12 and 0 < value.real <= 1:
            good.append(sp.simplify(root))
    if len(good) != 1:
        raise ValueError(f"expected one root in (0, 1] of {relation} = 0, found {good}")
    return good[0]


class ScheduleTable:
    """Evaluates a set of schedules, exactly (SymPy) or numerically (mpmath), with memoisation."""

    def __init__(
        self,
        schedules: Sequence[Schedule],
        coefficients: Mapping[sp.Symbol, sp.Expr] | None = None,
        *,
        exact: bool = True,
        dps: int = 40,
    ) -> None:
        self._by_name = {s.name: s for s in schedules}
        self._coefficients = dict(coefficients or {})
        self._exact = exact
        self._dps = dps
        self._memo: dict[tuple[str, tuple[int, ...]], sp.Expr] = {}

    def value(self, name: str, *index: int) -> sp.Expr:
        """Entry `name(index)`: an exact SymPy number, or a Float with `dps` digits."""
        key = (name, tuple(int(i) for i in index))
        if key not in self._memo:
            self._memo[key] = self._compute(self._by_name[name], key[1])
        return self._memo[key]

    def evaluate(self, expr: sp.Expr, **indices: int) -> sp.Expr:
        """Evaluate an expression that mentions k, j, coefficients and schedule references."""
        subs = {k: indices.get("k", k), j: indices.get("j", j)}
        expr = sp.sympify(expr).subs(subs).subs(self._coefficients)
        expr = self._resolve(expr)
        return expr if self._exact else sp.Float(sp.N(expr, self._dps), self._dps)

    def _resolve(self, expr: sp.Expr) -> sp.Expr:
        def is_ref(e: sp.Basic) -> bool:
            return (
                isinstance(e, sp.core.function.AppliedUndef)
                and e.func.__name__ in self._by_name
                and all(a.is_Integer for a in e.args)
            )

        def to_value(e: sp.Basic) -> sp.Expr:
            return self.value(e.func.__name__, *(int(a) for a in e.args))

        previous = None
        while previous != expr:  # references may appear inside Piecewise branches resolved later
            previous = expr
            expr = expr.replace(is_ref, to_value)
        return expr

    def _compute(self, schedule: Schedule, index: tuple[int, ...]) -> sp.Expr:
        kk = index[0]
        if schedule.two_index:
            jj = index[1]
            if not (0 <= jj < kk):
                raise IndexError(f"{schedule.name}({kk}, {jj}) is outside 0 <= j < k")
        if kk in schedule.initial and not schedule.two_index:
            value = sp.sympify(schedule.initial[kk]).subs(self._coefficients)
        elif kk < schedule.start:
            raise IndexError(
                f"{schedule.name}({kk}) is before the schedule starts at {schedule.start}"
            )
        else:
            subs = {k: kk}
            if schedule.two_index:
                subs[j] = index[1]
            value = schedule.rule.subs(subs)
            value = self._resolve(value.subs(self._coefficients))
        if self._exact:
            return value
        with mpmath.workdps(self._dps):
            return sp.Float(sp.N(value, self._dps), self._dps)
