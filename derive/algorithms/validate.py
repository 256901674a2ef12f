"""Check a derived recurrence the way its generated code will run, before any code is written.

A user's spec can be well-formed and still give a network that fails when it runs: a state read
before it has a value (x[k-2] with only x[-1] given), a schedule that divides by zero at some k
(1/(k − 3)), a coefficient that overflows at depth 900 (2**k · …). `check_recurrence` finds these:

- *values*: replays the index bookkeeping of the generated fc code (the initial values, then each
  update in order for k = 0, 1, …, then the output at every depth) and names the first state read
  without a value; look-backs are bounded (derive.limits.LOOKBACK), so a few steps past the
  deepest look-back cover every depth;
- *numbers*: runs the printed schedule code (the very lines the templates paste) for depth
  MAX_DEPTH, then every printed coefficient for k = 0 … MAX_DEPTH (j over its sum's range), each
  with the coefficients' default values, in float64 as the generated code does; any exception or
  non-finite value is named with its k.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import sympy as sp

from derive.algorithms.ir import Recurrence, Term
from derive.algorithms.symbols import j, k
from derive.errors import UserError
from derive.limits import LOOKBACK, MAX_DEPTH


def check_recurrence(recurrence: Recurrence, depth: int = MAX_DEPTH) -> None:
    """UserError naming the first problem, if the generated code of `recurrence` would fail for
    some network depth up to `depth`."""
    check_values(recurrence)
    check_numbers(recurrence, depth)


def _x_name(recurrence: Recurrence, stream: str) -> str:
    for s in recurrence.algorithm.streams:
        if s.z_name == stream:
            return s.name
    return stream


def _reads(term: Term, step: int) -> Iterator[tuple[str, int]]:
    """(stream, index) of every state `term` reads at iteration `step`."""
    if term.history is None:
        values = [None]
    else:
        lo, hi = (int(sp.sympify(b).subs(k, step)) for b in term.history)
        values = list(range(lo, hi + 1))
    for jj in values:
        for ref in term.states():
            index = ref.index.subs(k, step)
            if jj is not None:
                index = index.subs(j, jj)
            yield ref.stream, int(index)


def check_values(recurrence: Recurrence) -> None:
    """Every state the generated code reads has a value by then (UserError otherwise)."""
    name = recurrence.name
    known = {(recurrence.input_stream, 0)}
    for condition in recurrence.initial:
        for term in condition.terms:
            for stream, index in _reads(term, 0):
                if (stream, index) not in known:
                    raise UserError(
                        f"{name}: the initial value of {_x_name(recurrence, condition.target.stream)}"
                        f"[{condition.target.index}] uses {_x_name(recurrence, stream)}[{index}], "
                        "which has no value yet (list it earlier under [initial])"
                    )
        known.add((condition.target.stream, int(condition.target.index)))
    steps = int(LOOKBACK.high) + 3
    for step in range(steps):
        for update in recurrence.updates:
            for term in update.terms:
                for stream, index in _reads(term, step):
                    if (stream, index) not in known:
                        raise UserError(
                            f"{name}: the update of {_x_name(recurrence, update.stream)} at k = {step} "
                            f"reads {_x_name(recurrence, stream)}[{index}], which has no value "
                            f'(give it under [initial], e.g. "{_x_name(recurrence, stream)}[{index}]" '
                            f'= "{_x_name(recurrence, recurrence.input_stream)}[0]")'
                        )
            known.add((update.stream, step + 1))
        for term in recurrence.output:
            for stream, index in _reads(term, step + 1):
                if (stream, index) not in known:
                    raise UserError(
                        f"{name}: the output at depth {step + 1} reads "
                        f"{_x_name(recurrence, stream)}[{index}], which has no value"
                    )


def check_numbers(recurrence: Recurrence, depth: int = MAX_DEPTH) -> None:
    """Schedules and coefficients are finite numbers for every layer up to `depth` (UserError)."""
    from derive.codegen.printer import CoefficientPrinter, constants_code, schedule_code

    name = recurrence.name
    namespace: dict[str, object] = {"math": math, "depth": depth}
    namespace.update({c.name: float(sp.N(c.default, 17)) for c in recurrence.coefficients})
    for constant, code in constants_code(recurrence):
        namespace[constant] = _run(code, namespace, f"{name}: constant {constant}")
    for schedule in schedule_code(recurrence.schedules):
        where = f"{name}: schedule {schedule.name}"
        try:
            exec("\n".join(schedule.lines), namespace)  # noqa: S102 (our own printed code)
        except Exception as exc:
            at = namespace.get("k", "?")
            raise UserError(f"{where} fails at k = {at}: {_reason(exc)}") from None
        for index, entry in enumerate(namespace[schedule.name]):  # type: ignore[arg-type]
            for value in entry if isinstance(entry, list) else [entry]:  # 2-index: row k
                if not _finite(value):
                    raise UserError(
                        f"{where} is {_shown(value)} at k = {index}, not a finite number"
                    )
    printer = CoefficientPrinter({s.name for s in recurrence.schedules})
    for update in recurrence.updates:
        for term in update.terms:
            for coefficient, summed in _coefficients(term):
                if not coefficient.free_symbols & {k, j}:
                    steps: object = [0]
                else:
                    steps = range(depth)
                code = compile(printer.doprint(coefficient), "<coefficient>", "eval")
                where = f"{name}: the coefficient {coefficient} in the update of {update.stream}"
                for step in steps:  # type: ignore[attr-defined]
                    namespace["k"] = step
                    for jj in _j_range(summed, term, step):
                        namespace["j"] = jj
                        _run(
                            code,
                            namespace,
                            f"{where} at k = {step}" + (f", j = {jj}" if summed else ""),
                        )
    depth_symbol = sp.Symbol("depth")
    for term in recurrence.output:
        code = compile(printer.doprint(term.coefficient.subs(k, depth_symbol)), "<output>", "eval")
        for d in range(1, depth + 1) if term.coefficient.has(k) else [depth]:
            namespace["depth"] = d
            _run(code, namespace, f"{name}: the output coefficient {term.coefficient} at depth {d}")


def _coefficients(term: Term) -> Iterator[tuple[sp.Expr, bool]]:
    summed = term.history is not None
    yield term.coefficient, summed
    for inner in term.t_argument or ():
        yield inner.coefficient, summed


def _j_range(summed: bool, term: Term, step: int) -> range | list[None]:
    if not summed:
        return [None]
    lo, hi = (int(sp.sympify(b).subs(k, step)) for b in term.history)  # type: ignore[union-attr]
    return range(lo, hi + 1)


def _run(code: object, namespace: dict[str, object], where: str) -> float:
    try:
        value = eval(code, namespace)  # noqa: S307 (our own printed code, no user text)
    except Exception as exc:
        raise UserError(f"{where} fails: {_reason(exc)}") from None
    if not _finite(value):
        raise UserError(f"{where} is {_shown(value)}, not a finite real number")
    return float(value)


def _finite(value: object) -> bool:
    """A real number that float64 holds (what the generated code multiplies tensors by)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text):,} characters)"


def _reason(exc: Exception) -> str:
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    return f"{type(exc).__name__}: {exc}"
