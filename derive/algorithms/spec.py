"""How an optimization algorithm is stated: x-space updates in SymPy, as data.

An algorithm is stated once, in the papers' own terms (x-space, ∇f, θ_k, argmin steps). Nothing
here knows about networks: derive.algorithms.derivation turns the statement into a z-space layer
recurrence by the substitution x = Uz.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from derive.algorithms.schedules import Schedule, solve_implicit
from derive.algorithms.symbols import k


@dataclass(frozen=True)
class Stream:
    """A state sequence of the algorithm and the name of its z-space image (x = Uz)."""

    name: str  # x-space name, e.g. "x", "y", "lam"
    z_name: str  # z-space name used in code, e.g. "z", "zp", "mu"
    z_symbol: str  # how equations print it, e.g. "z", "z'", "μ"
    symbol: str = ""  # how x-space equations print it, e.g. "x", "λ"

    @property
    def x_symbol(self) -> str:
        return self.symbol or self.name


@dataclass(frozen=True)
class Objective:
    """argmin over `variable` of `expr`: a strongly convex quadratic written with inner()/sqnorm()."""

    variable: sp.Symbol
    expr: sp.Expr


@dataclass(frozen=True)
class Update:
    """`stream(k+1) = rhs`, or `stream(k+1) = argmin objective`; updates run in the stated order."""

    stream: str
    rhs: sp.Expr | None = None
    argmin: Objective | None = None


@dataclass(frozen=True)
class Coefficient:
    """A constant the user may set (β of heavy ball, κ of the triple momentum method)."""

    name: str
    default: sp.Expr
    symbol: str
    doc: str
    minimum: float | None = None  # inclusive bounds checked on user values
    maximum: float | None = None
    strict_minimum: bool = False
    code: str = ""  # its variable in generated code when not `name` (user specs: "c_" + name)

    @property
    def variable(self) -> str:
        """The Python name generated code binds the value to (its key stays `name`)."""
        return self.code or self.name

    @property
    def sym(self) -> sp.Symbol:
        """The symbol in equations and in the IR; it prints as `variable` in generated code."""
        return sp.Symbol(self.variable, real=True)


@dataclass(frozen=True)
class Constant:
    """A named constant derived from the coefficients, e.g. ρ = 1 − 1/√κ; kept as a symbol in the IR."""

    name: str
    expr: sp.Expr
    symbol: str
    doc: str = ""

    @property
    def sym(self) -> sp.Symbol:
        return sp.Symbol(self.name, real=True)


@dataclass(frozen=True)
class ImplicitSchedule:
    """A schedule the paper defines by a relation, e.g. (1 − θ_k)/θ_k² = 1/θ_{k−1}², solved on use."""

    name: str
    relation: sp.Expr  # = 0, in terms of name(k) and name(k - 1)
    initial: dict[int, sp.Expr]
    symbol: str
    doc: str

    @cached_property
    def schedule(self) -> Schedule:
        f = sp.Function(self.name)
        rule = solve_implicit(self.relation, f(k), {f(k - 1): 0.5})
        return Schedule(
            self.name, rule, start=1, initial=self.initial, symbol=self.symbol, doc=self.doc
        )


@dataclass(frozen=True)
class SpecialCase:
    """A known network that the algorithm's engineering form contains (SCIS Table C1)."""

    network: str
    setting: str


@dataclass(frozen=True)
class Algorithm:
    """An iteration stated in x-space with its coefficients, schedules and initial conditions."""

    name: str
    title: str
    reference: str
    equation: str  # where the x-space iteration is printed, e.g. "SCIS (2)"
    streams: tuple[Stream, ...]
    updates: tuple[Update, ...]
    output: sp.Expr  # the network output at k = depth, e.g. x(k)
    initial: tuple[tuple[sp.Expr, sp.Expr], ...] = ()
    lets: tuple[tuple[sp.Expr, sp.Expr], ...] = ()  # auxiliary sequences, inlined: y(k) = ...
    coefficients: tuple[Coefficient, ...] = ()
    constants: tuple[Constant, ...] = ()  # derived from coefficients, in dependency order
    schedules: tuple[Schedule | ImplicitSchedule, ...] = ()
    z_equation: str = ""  # where the papers print the z-space recurrence, e.g. "SCIS (10)"
    rate: str = ""
    engineering: str = "lagged"  # conv form: "lagged", "dense" or "c5" (ADMM's, `c5_form`)
    special_cases: tuple[SpecialCase, ...] = ()
    notes: tuple[str, ...] = ()
    source_file: str = ""  # for user specs: where it was read from

    @property
    def input_stream(self) -> Stream:
        """The stream whose value at k = 0 is the network input."""
        return self.streams[0]

    def stream(self, name: str) -> Stream:
        return next(s for s in self.streams if s.name == name)

    def resolved_schedules(self) -> tuple[Schedule, ...]:
        """Every schedule with its explicit rule (implicit relations solved)."""
        return tuple(s.schedule if isinstance(s, ImplicitSchedule) else s for s in self.schedules)

    def coefficient(self, name: str) -> Coefficient:
        return next(c for c in self.coefficients if c.name == name)
