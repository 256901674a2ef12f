"""Print IR coefficients, schedules and updates as Python source for the generated modules.

The generated code evaluates exactly the SymPy rules of the IR (in float64 at run time): the
templates never restate an equation, they paste what this printer made of the derived one
(derive.codegen), and derive.algorithms.validate runs the same printed code before any is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from derive.algorithms.ir import Recurrence, StateRef, Term
from derive.algorithms.schedules import Schedule
from derive.algorithms.symbols import j, k


class CoefficientPrinter(PythonCodePrinter):
    """Scalars by name, schedule references as table lookups: h(k + 1, j) → h[k + 1][j].

    `tables` maps each schedule's name to the variable that holds its table (a set: the same)."""

    def __init__(self, tables: Mapping[str, str] | Iterable[str]) -> None:
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})
        self.tables = dict(tables) if isinstance(tables, Mapping) else {t: t for t in tables}

    def _print_AppliedUndef(self, expr: sp.Basic) -> str:
        name = expr.func.__name__
        if name not in self.tables:
            raise ValueError(f"no table for {expr}")
        return self.tables[name] + "".join(f"[{self._print(a)}]" for a in expr.args)

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return expr.name

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"{expr.p} / {expr.q}"

    def _print_Half(self, expr: sp.Rational) -> str:
        return self._print_Rational(expr)


def table_variables(schedules: Iterable[Schedule]) -> dict[str, str]:
    """{schedule name: the variable generated code holds its table in}."""
    return {s.name: s.variable for s in schedules}


def print_scalar(expr: sp.Expr, tables: Mapping[str, str] | Iterable[str]) -> str:
    """A scalar coefficient as Python; needs `import math` when it has square roots."""
    return CoefficientPrinter(tables).doprint(sp.sympify(expr))


@dataclass(frozen=True)
class ScheduleCode:
    """Python statements that build one schedule table for `depth` steps."""

    name: str
    doc: str
    lines: tuple[str, ...]
    variable: str = ""  # the list the lines fill (the name unless a user spec's)


def schedule_code(schedules: Sequence[Schedule]) -> list[ScheduleCode]:
    """Statements filling list `name` for k = 0 … depth + 1 (2-index tables: row k has j < k)."""
    printer = CoefficientPrinter(table_variables(schedules))
    out = []
    for schedule in schedules:
        variable = schedule.variable
        target = "row" if schedule.two_index else variable
        body = _assignment_lines(schedule.rule, target, printer)
        if schedule.two_index:
            lines = (
                f"{variable}: list[list[float]] = [[] for _ in range({schedule.start})]",
                f"for k in range({schedule.start}, depth + 2):",
                "    row: list[float] = []",
                "    for j in range(k):",
                *(f"        {line}" for line in body),
                f"    {variable}.append(row)",
            )
        else:
            missing = [i for i in range(schedule.start) if i not in schedule.initial]
            if missing:
                raise ValueError(f"schedule {schedule.name} lacks initial values for {missing}")
            first = ", ".join(
                repr(float(sp.N(schedule.initial[i], 17))) for i in range(schedule.start)
            )
            lines = (
                f"{variable}: list[float] = [{first}]",
                f"for k in range({schedule.start}, depth + 2):",
                *(f"    {line}" for line in body),
            )
        out.append(ScheduleCode(schedule.name, schedule.doc, lines, variable))
    return out


def _assignment_lines(rule: sp.Expr, target: str, printer: CoefficientPrinter) -> list[str]:
    """`target.append(rule)`, with a Piecewise rule written as if/elif/else statements."""
    if not isinstance(rule, sp.Piecewise):
        return [f"{target}.append({printer.doprint(rule)})"]
    lines = []
    for i, (value, condition) in enumerate(rule.args):
        append = f"    {target}.append({printer.doprint(value)})"
        if condition is sp.true:
            lines += ["else:" if i else "if True:", append]
            break
        keyword = "if" if i == 0 else "elif"
        lines += [f"{keyword} {printer.doprint(condition)}:", append]
    return lines


@dataclass
class StepCode:
    """The body of one step k of the tied/untied fc network (see templates/fc.py.j2)."""

    cached_t: list[tuple[str, str]]  # (cache name, stream): t_z[k] = layer(z[k]) for history sums
    assignments: list[str]  # z[k + 1] = ...
    tables: list[tuple[str, str]]  # (schedule name, variable) of the tables the step reads


def step_code(recurrence: Recurrence, layer: str = "layer") -> StepCode:
    """Python statements for one step: each update `stream[k + 1] = ...` in order."""
    printer = CoefficientPrinter(table_variables(recurrence.schedules))
    cached: list[tuple[str, str]] = []

    def body(term: Term, index_var: sp.Symbol | None) -> str:
        if term.state is not None:
            return state(term.state)
        if term.injected:
            return "u"
        assert term.t_argument is not None
        if term.history is not None:
            (inner,) = term.t_argument
            if inner.state is None or inner.coefficient != 1 or inner.state.index != j:
                raise ValueError("history sums of T support T(z_j) only")
            cache = f"t_{inner.state.stream}"
            if (cache, inner.state.stream) not in cached:
                cached.append((cache, inner.state.stream))
            return f"{cache}[j]"
        return f"{layer}({combination(term.t_argument)})"

    def state(ref: StateRef) -> str:
        return f"{ref.stream}[{printer.doprint(ref.index)}]"

    def combination(terms: Sequence[Term]) -> str:
        parts: list[str] = []
        for term in terms:
            if term.history is None:
                parts.append(times(term.coefficient, body(term, None)))
                continue
            negative = term.coefficient.could_extract_minus_sign()
            coefficient = -term.coefficient if negative else term.coefficient
            lo, hi = (printer.doprint(b) for b in term.history)
            if term.injected:  # Σ_j c(j)·u: the scalars are summed first, u is scaled once
                total = f"sum({printer.doprint(coefficient)} for j in range({lo}, {hi} + 1))"
                parts.append(f"-{total} * u" if negative else f"{total} * u")
                continue
            text = f"sum({times(coefficient, body(term, j))} for j in range({lo}, {hi} + 1))"
            parts.append(f"-{text}" if negative else text)
        return join_signed(parts)

    def times(coefficient: sp.Expr, operand: str) -> str:
        if coefficient == 1:
            return operand
        if coefficient == -1:
            return f"-{operand}"
        c = printer.doprint(coefficient)
        needs_parens = coefficient.is_Add or (
            coefficient.is_Rational and not coefficient.is_Integer
        )
        return f"({c}) * {operand}" if needs_parens else f"{c} * {operand}"

    assignments = [f"{u.stream}[k + 1] = {combination(u.terms)}" for u in recurrence.updates]
    used = {
        a.func.__name__
        for u in recurrence.updates
        for t in u.terms
        for c in [t.coefficient, *(i.coefficient for i in t.t_argument or ())]
        for a in sp.sympify(c).atoms(sp.core.function.AppliedUndef)
    }
    tables = [(s.name, s.variable) for s in recurrence.schedules if s.name in used]
    return StepCode(cached, assignments, tables)


def output_code(recurrence: Recurrence, depth_var: str = "depth") -> str:
    """The returned expression, e.g. `z[depth]` or `(1 + tmm_delta) * z[depth] - ...`."""
    printer = CoefficientPrinter(table_variables(recurrence.schedules))
    parts = []
    for term in recurrence.output:
        if term.state is None:
            raise ValueError("the output must be a combination of states")
        index = printer.doprint(term.state.index.subs(k, sp.Symbol(depth_var)))
        operand = f"{term.state.stream}[{index}]"
        c = term.coefficient
        if c == 1:
            parts.append(operand)
        elif c == -1:
            parts.append(f"-{operand}")
        else:
            text = printer.doprint(c)
            parts.append(f"({text}) * {operand}" if c.is_Add else f"{text} * {operand}")
    return join_signed(parts)


def join_signed(parts: Sequence[str]) -> str:
    """'a', '-b', 'c' → 'a - b + c'."""
    if not parts:
        return "0"
    text = parts[0]
    for part in parts[1:]:
        text += f" - {part[1:]}" if part.startswith("-") else f" + {part}"
    return text


def initial_code(recurrence: Recurrence, input_name: str = "z0") -> list[str]:
    """`z = {-1: z0, 0: z0}`-style history initialisation, one dict per stream."""
    printer = CoefficientPrinter(table_variables(recurrence.schedules))
    entries: dict[str, list[tuple[int, str]]] = {s: [] for s in recurrence.streams}
    entries[recurrence.input_stream].append((0, input_name))
    for condition in recurrence.initial:
        index = int(condition.target.index)
        if condition.terms:
            value = _initial_value(condition.terms, entries, printer, input_name, recurrence)
        else:
            value = f"torch.zeros_like({input_name})"
        entries[condition.target.stream].append((index, value))
    lines = []
    for stream in recurrence.streams:
        items = ", ".join(f"{i}: {v}" for i, v in sorted(entries[stream]))
        lines.append(f"{stream} = {{{items}}}")
    return lines


def _initial_value(
    terms: Sequence[Term],
    entries: dict[str, list[tuple[int, str]]],
    printer: CoefficientPrinter,
    input_name: str,
    recurrence: Recurrence,
) -> str:
    known: dict[tuple[str, int], str] = {
        (s, i): v for s, values in entries.items() for i, v in values
    }
    parts = []
    for term in terms:
        if term.state is None:
            raise ValueError("initial conditions must be combinations of states")
        value = known.get((term.state.stream, int(term.state.index)))
        if value is None:
            raise ValueError(f"initial condition refers to unknown {term.state}")
        c = term.coefficient
        parts.append(value if c == 1 else f"{printer.doprint(c)} * {value}")
    return join_signed(parts)


def constants_code(recurrence: Recurrence) -> list[tuple[str, str]]:
    """[(name, python expression)] for the derived constants, e.g. ('rho', '1 - 1/math.sqrt(kappa)')."""
    return [(c.name, print_scalar(c.expr, set())) for c in recurrence.algorithm.constants]


@dataclass(frozen=True)
class Bindings:
    """The coefficients and constants a piece of generated code reads, in definition order."""

    coefficients: tuple[tuple[str, str], ...]  # (variable, key in DEFAULTS)
    constants: tuple[tuple[str, str], ...]  # (name, python expression)


def bindings(recurrence: Recurrence, code: Sequence[str]) -> Bindings:
    """What `code` needs bound: the constants it reads (and the ones those read), then coefficients."""
    import re

    def reads(name: str, texts: Sequence[str]) -> bool:
        return any(re.search(rf"\b{re.escape(name)}\b", t) for t in texts)

    texts = list(code)
    kept: list[tuple[str, str]] = []
    for name, expr in reversed(constants_code(recurrence)):
        if reads(name, texts):
            kept.insert(0, (name, expr))
            texts.append(expr)
    names = tuple((c.variable, c.name) for c in recurrence.coefficients if reads(c.variable, texts))
    return Bindings(names, tuple(kept))


def uses_math(texts: Sequence[str]) -> bool:
    """True when any printed text calls math.*."""
    return any("math." in t for t in texts)


Printer = Callable[[sp.Expr], str]
