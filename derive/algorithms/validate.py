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

Only code printed from the IR reaches `exec`/`eval`, and each piece is checked before it is
compiled (`checked_code`): its syntax tree may hold arithmetic, comparisons, conditionals, list
building, `for` over `range`, calls of abs/min/max/float/int/range, `math.<function or constant>`
and `<list>.append`, and names that this check binds (coefficients, constants, schedule tables,
k, j, depth); anything else (an attribute such as `__class__`, a call of another name, an import,
a lambda, a string) is refused before it runs. The code runs with only those builtins.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Collection, Iterator
from types import CodeType

import sympy as sp

from derive.algorithms.ir import Recurrence, Term
from derive.algorithms.pycode import (
    CoefficientPrinter,
    constants_code,
    schedule_code,
    table_variables,
)
from derive.algorithms.symbols import j, k
from derive.errors import UserError
from derive.limits import LOOKBACK, MAX_DEPTH

# The builtins printed code may call (list and float also annotate the schedule tables).
SAFE_BUILTINS = {f.__name__: f for f in (abs, min, max, float, int, range, list)}
LOOP_NAMES = ("k", "j", "row", "_")  # the loop variables of the printed schedule code
_NODES = (
    # structure
    ast.Module,
    ast.Expression,
    ast.Expr,
    ast.AnnAssign,
    ast.Assign,
    ast.For,
    ast.If,
    ast.IfExp,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Constant,
    ast.List,
    ast.ListComp,
    ast.comprehension,
    ast.Subscript,
    ast.Call,
    ast.Attribute,
    # operators
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.USub,
    ast.UAdd,
    ast.Not,
    ast.And,
    ast.Or,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
)
_MATH = frozenset(n for n in dir(math) if not n.startswith("_"))


def checked_code(source: str, mode: str, names: Collection[str], where: str) -> CodeType:
    """`source` compiled, after its syntax tree passed the whitelist (UserError otherwise).

    `names`: the variables the code may read or bind, besides SAFE_BUILTINS."""
    try:
        tree = ast.parse(source, mode=mode)
    except SyntaxError as exc:
        raise UserError(f"{where}: the printed code does not parse ({exc.msg})") from None
    for node in ast.walk(tree):
        problem = _forbidden(node, names)
        if problem:
            raise UserError(f"{where}: the printed code {_shown(source)!r} {problem}; not run")
    return compile(tree, "<derive.validate>", mode)


def _forbidden(node: ast.AST, names: Collection[str]) -> str | None:
    """Why `node` may not appear in printed code (None: it may)."""
    if not isinstance(node, _NODES):
        return f"holds {type(node).__name__}, which printed coefficients never need"
    if isinstance(node, ast.Constant) and type(node.value) not in (int, float, bool):
        return f"holds the constant {node.value!r}"
    if isinstance(node, ast.Name) and node.id not in names and node.id not in SAFE_BUILTINS:
        return f"uses the name {node.id!r}"
    if isinstance(node, ast.Attribute):
        base = node.value.id if isinstance(node.value, ast.Name) else None
        if not (
            (base == "math" and node.attr in _MATH) or (base in names and node.attr == "append")
        ):
            return f"reads the attribute {ast.unparse(node)!r}"
    if isinstance(node, ast.Call) and not isinstance(node.func, (ast.Name, ast.Attribute)):
        return f"calls {ast.unparse(node.func)!r}"
    return None


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

    name = recurrence.name
    namespace: dict[str, object] = {"__builtins__": dict(SAFE_BUILTINS), "math": math}
    namespace["depth"] = depth
    namespace.update({c.variable: float(sp.N(c.default, 17)) for c in recurrence.coefficients})
    allowed = {n for n in namespace if n != "__builtins__"}
    allowed |= {*LOOP_NAMES, *(s.variable for s in recurrence.schedules)}
    allowed |= {constant.name for constant in recurrence.algorithm.constants}
    for constant, text in constants_code(recurrence):
        where = f"{name}: constant {constant}"
        namespace[constant] = _run(checked_code(text, "eval", allowed, where), namespace, where)
    for schedule in schedule_code(recurrence.schedules):
        where = f"{name}: schedule {schedule.name}"
        code = checked_code("\n".join(schedule.lines), "exec", allowed, where)
        try:
            exec(code, namespace)  # noqa: S102 (printed from the IR, checked by checked_code)
        except Exception as exc:
            at = namespace.get("k", "?")
            raise UserError(f"{where} fails at k = {at}: {_reason(exc)}") from None
        for index, entry in enumerate(namespace[schedule.variable]):  # type: ignore[arg-type]
            for value in entry if isinstance(entry, list) else [entry]:  # 2-index: row k
                if not _finite(value):
                    raise UserError(
                        f"{where} is {_shown(value)} at k = {index}, not a finite number"
                    )
    printer = CoefficientPrinter(table_variables(recurrence.schedules))
    for update in recurrence.updates:
        for term in update.terms:
            for coefficient, summed in _coefficients(term):
                if not coefficient.free_symbols & {k, j}:
                    steps: object = [0]
                else:
                    steps = range(depth)
                where = f"{name}: the coefficient {coefficient} in the update of {update.stream}"
                code = checked_code(printer.doprint(coefficient), "eval", allowed, where)
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
        where = f"{name}: the output coefficient {term.coefficient}"
        text = printer.doprint(term.coefficient.subs(k, depth_symbol))
        code = checked_code(text, "eval", allowed, where)
        for d in range(1, depth + 1) if term.coefficient.has(k) else [depth]:
            namespace["depth"] = d
            _run(code, namespace, f"{name}: the output coefficient {term.coefficient} at depth {d}")


def _coefficients(term: Term) -> Iterator[tuple[sp.Expr, bool]]:
    summed = term.history is not None
    yield term.coefficient, summed
    for inner in term.t_argument or ():  # a T inside T (∇f(x − ∇f(x))) brings its own
        for coefficient, _ in _coefficients(inner):
            yield coefficient, summed


def _j_range(summed: bool, term: Term, step: int) -> range | list[None]:
    if not summed:
        return [None]
    lo, hi = (int(sp.sympify(b).subs(k, step)) for b in term.history)  # type: ignore[union-attr]
    return range(lo, hi + 1)


def _run(code: CodeType, namespace: dict[str, object], where: str) -> float:
    try:
        value = eval(code, namespace)  # noqa: S307 (printed from the IR, checked by checked_code)
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
