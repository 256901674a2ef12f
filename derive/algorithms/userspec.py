"""A user's own iteration in a TOML file, stated in the same terms as the built-ins.

    name = "two_momenta"
    title = "Heavy ball with a second momentum"
    states = ["x"]                       # the first one is the network input; more streams allowed
    [coefficients]
    beta = 0.3                           # or { default = 0.3, min = -1, max = 1 }
    gamma = 0.1
    [let]                                # optional auxiliary sequences, substituted in order
    "y[k]" = "x[k] + beta*(x[k] - x[k-1])"
    [update]                             # one entry per state, run in this order
    "x[k+1]" = "y[k] - grad(y[k]) + gamma*(x[k-1] - x[k-2])"
    [initial]                            # values before k = 0 (x[0] is the input)
    "x[-1]" = "x[0]"
    "x[-2]" = "x[0]"
    [schedules]                          # optional coefficients that depend on k
    mom = "(k - 1)/(k + 2)"              # used as mom[k]

Expressions are parsed with Python's `ast` module and a whitelist (numbers, + − * / **, the
names above, grad(·), sqrt/exp/log of scalars, `sum(expr, j, lo, hi)` over the history); nothing
is evaluated. Any error is one line naming the file and the entry.

The whole spec is checked before anything is written: every constant stays finite, real and below
1e100 as it is folded (so 9**16**16 is refused before SymPy computes it), and so does every number
the spec gives (a coefficient's default, min and max: `spec_number`), exponents are at most 16,
look-backs at most 16 steps, title and reference are one line of at most 200 characters; then the
derived recurrence is checked as the generated code will run it (derive.algorithms.validate):
every state it reads has a value, and every schedule and coefficient is a finite number for every
layer up to depth 1,000.
"""

from __future__ import annotations

import ast
import math
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

import sympy as sp
import tomllib

from derive.algorithms.schedules import Schedule
from derive.algorithms.spec import Algorithm, Coefficient, Stream, Update
from derive.algorithms.symbols import GRAD, j, k, vector
from derive.errors import UserError
from derive.limits import LOOKBACK, MAX_CONSTANT, MAX_EXPONENT, TITLE_CHARS
from derive.readers import parse_toml

MAX_TEXT = 2000
MAX_NODES = 400
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
RESERVED = {"k", "j", "grad", "sum", "sqrt", "exp", "log", "pi", "T", "U"}
# A user's coefficients and schedules live in their own namespace in generated code: the module
# binds coefficient `beta` to the variable `c_beta` and schedule `mom` to the table `s_mom` (no
# template names a variable with these prefixes), so `z0`, `self`, `float` or `torch` are fine names.
# Their keys (DEFAULTS, keyword arguments, --coef) stay the user's names, so a coefficient cannot
# be a keyword parameter of the generated functions it is passed to.
COEFFICIENT_PREFIX = "c_"
SCHEDULE_PREFIX = "s_"
API_PARAMETERS = frozenset(
    {"self", "layers", "depth", "dtype", "weight", "activation", "dim", "bias"}
)
_SCALAR_FUNCTIONS = {"sqrt": sp.sqrt, "exp": sp.exp, "log": sp.log}
_ALLOWED_KEYS = {
    "name",
    "title",
    "reference",
    "states",
    "output",
    "coefficients",
    "let",
    "update",
    "initial",
    "schedules",
}


class _Parser:
    """Whitelist translation of one expression (Python syntax) into SymPy."""

    def __init__(
        self, where: str, vectors: set[str], scalars: dict[str, sp.Symbol], schedules: set[str]
    ) -> None:
        self.where = where
        self.vectors = vectors
        self.scalars = scalars
        self.schedules = schedules

    def fail(self, message: str) -> UserError:
        return UserError(f"{self.where}: {message}")

    def parse(self, text: object) -> sp.Expr:
        if not isinstance(text, str):
            raise self.fail(f"expected an expression string, got {type(text).__name__}")
        if len(text) > MAX_TEXT:
            raise self.fail(f"expression longer than {MAX_TEXT} characters")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise self.fail(f"malformed expression {text!r} ({exc.msg})") from None
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            raise self.fail("expression too large")
        return self.node(tree.body)

    def node(self, n: ast.AST) -> sp.Expr:
        return self.checked(self._node(n))

    def checked(self, value: sp.Expr) -> sp.Expr:
        """`value` unless a constant in it is infinite, complex or beyond MAX_CONSTANT, or a power
        has an exponent beyond MAX_EXPONENT (after SymPy merged (v**a)**b into v**(a*b))."""
        if value.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise self.fail("division by zero (or an infinite value)")
        if value.has(sp.I):
            raise self.fail("not a real number (a square root or log of a negative number?)")
        for power in value.atoms(sp.Pow):
            if power.exp.is_Number and abs(power.exp) > MAX_EXPONENT:
                raise self.fail(f"exponent too large (at most {MAX_EXPONENT})")
        if value.is_number and value.is_commutative:
            number = sp.N(value, 20)
            if not number.is_finite or not number.is_real or abs(number) > MAX_CONSTANT:
                raise self.fail(f"number out of range (at most {MAX_CONSTANT:g} in size)")
        return value

    def _node(self, n: ast.AST) -> sp.Expr:
        if isinstance(n, ast.Constant) and type(n.value) in (int, float):
            value = n.value
            if not math.isfinite(value) or abs(value) > 1e12:
                raise self.fail(f"number {value!r} out of range")
            return (
                sp.nsimplify(repr(value), rational=True)
                if isinstance(value, float)
                else sp.Integer(value)
            )
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            operand = self.node(n.operand)
            return -operand if isinstance(n.op, ast.USub) else operand
        if isinstance(n, ast.BinOp):
            return self.binop(n)
        if isinstance(n, ast.Name):
            return self.name(n.id)
        if isinstance(n, ast.Subscript):
            return self.subscript(n)
        if isinstance(n, ast.Call):
            return self.call(n)
        raise self.fail(
            f"unsupported syntax {type(n).__name__} (allowed: numbers, + - * / **, x[k], grad(), sum())"
        )

    def binop(self, n: ast.BinOp) -> sp.Expr:
        left, right = self.node(n.left), self.node(n.right)
        if isinstance(n.op, ast.Add):
            return left + right
        if isinstance(n.op, ast.Sub):
            return left - right
        if isinstance(n.op, ast.Mult):
            if not left.is_commutative and not right.is_commutative:
                raise self.fail("a product of two vectors is not an iteration step")
            return left * right
        if isinstance(n.op, ast.Div):
            if not right.is_commutative:
                raise self.fail("cannot divide by a vector")
            return left / right
        if isinstance(n.op, ast.Pow):
            if not (left.is_commutative and right.is_commutative):
                raise self.fail("powers of vectors are not allowed")
            if right.is_Number and abs(right) > MAX_EXPONENT:
                raise self.fail(f"exponent too large (at most {MAX_EXPONENT})")
            if left.is_Number and right.is_Number and _log10(left) * float(right) > 100:
                raise self.fail(f"number out of range (at most {MAX_CONSTANT:g} in size)")
            return left**right
        raise self.fail(f"operator {type(n.op).__name__} is not allowed")

    def name(self, name: str) -> sp.Expr:
        if name == "k":
            return k
        if name == "j":
            return j
        if name == "pi":
            return sp.pi
        if name in self.scalars:
            return self.scalars[name]
        if name in self.vectors:
            raise self.fail(f"state {name!r} needs an index, e.g. {name}[k]")
        raise self.fail(f"unknown name {name!r} (declare coefficients under [coefficients])")

    def index(self, n: ast.AST) -> sp.Expr:
        value = self.node(n)
        if not value.free_symbols <= {k, j} or not value.is_commutative:
            raise self.fail(f"index {ast.unparse(n)!r} must be an integer expression in k and j")
        poly = sp.Poly(value, k, j) if value.free_symbols else None
        if poly is not None and (
            poly.total_degree() > 1 or any(not c.is_Integer for c in poly.coeffs())
        ):
            raise self.fail(f"index {ast.unparse(n)!r} must be k + c, j + c or an integer")
        if poly is None and not value.is_Integer:
            raise self.fail(f"index {ast.unparse(n)!r} must be an integer")
        offset = value.subs({k: 0, j: 0})
        if abs(int(offset)) > LOOKBACK.high:
            raise self.fail(
                f"index {ast.unparse(n)!r} looks {abs(int(offset)):,} steps away; at most "
                f"{LOOKBACK.high:g} ({LOOKBACK.reason})"
            )
        return value

    def subscript(self, n: ast.Subscript) -> sp.Expr:
        if not isinstance(n.value, ast.Name):
            raise self.fail("only names can be indexed")
        name = n.value.id
        if name in self.vectors:
            return vector(name)(self.index(n.slice))
        if name in self.schedules:
            return sp.Function(name)(self.index(n.slice))
        raise self.fail(f"{name!r} is neither a state, a let nor a schedule")

    def call(self, n: ast.Call) -> sp.Expr:
        if not isinstance(n.func, ast.Name) or n.keywords:
            raise self.fail("only grad(v), sum(expr, j, lo, hi), sqrt, exp and log may be called")
        name, args = n.func.id, n.args
        if name == "grad":
            if len(args) != 1:
                raise self.fail("grad takes one vector")
            argument = self.node(args[0])
            if argument.is_commutative:
                raise self.fail("grad needs a vector argument, e.g. grad(x[k])")
            return GRAD(argument)
        if name == "sum":
            if len(args) != 4 or not (isinstance(args[1], ast.Name) and args[1].id == "j"):
                raise self.fail("sum takes (expression, j, lower, upper)")
            return sp.Sum(self.node(args[0]), (j, self.index(args[2]), self.index(args[3])))
        if name in _SCALAR_FUNCTIONS:
            if len(args) != 1:
                raise self.fail(f"{name} takes one argument")
            argument = self.node(args[0])
            if not argument.is_commutative:
                raise self.fail(f"{name} takes a scalar")
            return _SCALAR_FUNCTIONS[name](argument)
        raise self.fail(f"function {name!r} is not allowed")


def _log10(number: sp.Number) -> float:
    """log10 |number| without converting a huge rational to float (0 for 0)."""
    p, q = sp.Rational(number).p, sp.Rational(number).q
    return 0.0 if p == 0 else math.log10(abs(p)) - math.log10(q)


def _one_line(value: object, what: str, where: str) -> str:
    """A title or reference: a string of one line, at most TITLE_CHARS characters."""
    if not isinstance(value, str):
        raise UserError(f"{where}: {what} must be a string")
    if len(value) > TITLE_CHARS:
        raise UserError(f"{where}: {what} is {len(value):,} characters long; at most {TITLE_CHARS}")
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in "\u2028\u2029" for c in value):
        raise UserError(f"{where}: {what} must be one line of text (no control characters)")
    return value


def _identifier(value: object, where: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value) or value in RESERVED:
        raise UserError(
            f"{where}: {value!r} is not a usable name (letters, digits, _; not {sorted(RESERVED)})"
        )
    return value


def _indexed(key: str, parser: _Parser, names: set[str], where: str) -> sp.Expr:
    target = parser.parse(key)
    if not (isinstance(target, sp.core.function.AppliedUndef) and target.func.__name__ in names):
        raise UserError(
            f"{where}: key {key!r} must be one of {sorted(names)} with an index, e.g. x[k+1]"
        )
    return target


def load_spec(path: Path) -> Algorithm:
    """Read and check a TOML iteration spec; UserError (one line) on any problem."""

    try:
        data = parse_toml(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise UserError(f"algorithm spec {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    return spec_from_dict(data, str(path))


def spec_from_dict(data: dict, where: str = "spec") -> Algorithm:
    """The Algorithm a parsed TOML document states."""
    unknown = sorted(set(data) - _ALLOWED_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_ALLOWED_KEYS)}")
    name = _identifier(data.get("name"), f"{where}: name")
    states = data.get("states", ["x"])
    if not isinstance(states, list) or not states:
        raise UserError(f"{where}: states must be a non-empty list of names")
    states = [_identifier(s, f"{where}: states") for s in states]
    coefficients = _coefficients(data.get("coefficients", {}), where)
    lets_table = _table(data, "let", where)
    schedules_table = _table(data, "schedules", where)
    let_names = {_identifier(re.sub(r"\[.*", "", key), f"{where}: let") for key in lets_table}
    schedule_names = {_identifier(key, f"{where}: schedules") for key in schedules_table}
    scalars = {c.name: c.sym for c in coefficients}
    clash = (set(states) | let_names) & (set(scalars) | schedule_names) or set(states) & let_names
    if clash:
        raise UserError(f"{where}: names used twice: {sorted(clash)}")
    vectors = set(states) | let_names

    def parser(section: str, key: str) -> _Parser:
        return _Parser(f"{where}: [{section}] {key}", vectors, scalars, schedule_names)

    schedules = _schedules(schedules_table, scalars, where)
    lets = _lets(lets_table, parser, let_names, where)
    updates = _updates(_table(data, "update", where), parser, states, where)
    initial = _initial(_table(data, "initial", where), parser, states, where)
    output = parser("output", "output").parse(data.get("output", f"{states[0]}[k]"))
    streams = tuple(
        Stream(s, "z" if i == 0 else f"z_{s}", "z" if i == 0 else f"z_{s}", s)
        for i, s in enumerate(states)
    )
    title = _one_line(data.get("title", name), "title", where)
    reference = _one_line(data.get("reference", ""), "reference", where)
    return Algorithm(
        name=name,
        title=title,
        reference=reference,
        equation=f"user spec {where}",
        streams=streams,
        updates=tuple(updates),
        output=output,
        initial=tuple(initial),
        lets=tuple(lets),
        coefficients=tuple(coefficients),
        schedules=tuple(schedules),
        engineering="lagged",
        source_file=where,
    )


_ParserFor = Callable[[str, str], "_Parser"]


def _schedules(table: dict, scalars: dict[str, sp.Symbol], where: str) -> list[Schedule]:
    """[schedules]: each rule a scalar of k and the coefficients."""
    schedules = []
    for key, text in table.items():
        rule = _Parser(f"{where}: [schedules] {key}", set(), scalars, set()).parse(text)
        if not rule.free_symbols <= {k} | set(scalars.values()):
            raise UserError(f"{where}: [schedules] {key} may use k and coefficients only")
        schedules.append(
            Schedule(
                key,
                rule,
                start=0,
                symbol=key,
                doc=f"{key}_k = {text}",
                code=SCHEDULE_PREFIX + key,
            )
        )
    return schedules


def _lets(table: dict, parser: _ParserFor, let_names: set[str], where: str) -> list:
    """[let]: (target at index k, its expression) pairs."""
    lets = []
    for key, text in table.items():
        target = _indexed(key, parser("let", key), let_names, where)
        if target.args[0] != k:
            raise UserError(f"{where}: [let] {key}: define it at index k, e.g. y[k]")
        lets.append((target, parser("let", key).parse(text)))
    return lets


def _updates(table: dict, parser: _ParserFor, states: list[str], where: str) -> list[Update]:
    """[update]: each state set once, at index k + 1, by a vector expression."""
    updates = []
    for key, text in table.items():
        target = _indexed(key, parser("update", key), set(states), where)
        if target.args[0] != k + 1:
            raise UserError(f"{where}: [update] {key}: an update sets index k+1, e.g. x[k+1]")
        rhs = parser("update", key).parse(text)
        if rhs.is_commutative:
            raise UserError(f"{where}: [update] {key}: the right side must be a vector")
        updates.append(Update(target.func.__name__, rhs))
    if sorted(u.stream for u in updates) != sorted(states):
        raise UserError(f"{where}: [update] must set each state once: {states}")
    return updates


def _initial(table: dict, parser: _ParserFor, states: list[str], where: str) -> list:
    """[initial]: states at indices <= 0, as (target, value) pairs."""
    initial = []
    for key, text in table.items():
        target = _indexed(key, parser("initial", key), set(states), where)
        if not target.args[0].is_Integer or target.args[0] > 0:
            raise UserError(f"{where}: [initial] {key}: set an index <= 0, e.g. x[-1]")
        value = parser("initial", key).parse(text) if text not in (0, "0") else sp.Integer(0)
        initial.append((target, value))
    return initial


def spec_number(value: object, what: str) -> float:
    """`value` as a float if it is a number of size at most MAX_CONSTANT, else one-line UserError.

    The one bound on every number a spec gives (a coefficient's default, min and max; a --coef
    value): the bound constants inside expressions keep as they are folded."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not abs(value) <= MAX_CONSTANT:  # type: ignore[operator]  # NaN fails too
        raise UserError(
            f"{what} must be a finite number of size at most {MAX_CONSTANT:g}, got {_shown(value)}"
        )
    return float(value)  # type: ignore[arg-type]


def _shown(value: object) -> str:
    """A short text for a bad value (a huge integer by its digit count, never all its digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    if isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"{where}: [{key}] must be a table")
    return value


def _coefficients(table: object, where: str) -> list[Coefficient]:
    if not isinstance(table, dict):
        raise UserError(f"{where}: [coefficients] must be a table")
    out = []
    for name, value in table.items():
        _identifier(name, f"{where}: [coefficients]")
        if name in API_PARAMETERS:
            raise UserError(
                f"{where}: [coefficients] {name}: the generated code takes {name!r} as a "
                f"parameter, so it cannot be a coefficient's keyword; rename it (not one of "
                f"{sorted(API_PARAMETERS)})"
            )
        low = high = None
        if isinstance(value, dict):
            extra = sorted(set(value) - {"default", "min", "max", "doc"})
            if extra:
                raise UserError(f"{where}: [coefficients] {name}: unknown field(s) {extra}")
            low, high = value.get("min"), value.get("max")
            doc = value.get("doc", "")
            value = value.get("default")
        else:
            doc = ""
        if value is None:
            raise UserError(f"{where}: [coefficients] {name}: a default value is required")
        value, low, high = (
            v if v is None else spec_number(v, f"{where}: [coefficients] {name}: {label}")
            for label, v in (("default", value), ("min", low), ("max", high))
        )
        if not isinstance(doc, str):
            raise UserError(f"{where}: [coefficients] {name}: doc must be a string")
        if (low is not None and value < low) or (high is not None and value > high):
            raise UserError(
                f"{where}: [coefficients] {name}: default {value} outside [{low}, {high}]"
            )
        out.append(
            Coefficient(
                name,
                sp.nsimplify(repr(float(value)), rational=True),
                name,
                str(doc),
                minimum=low,
                maximum=high,
                code=COEFFICIENT_PREFIX + name,
            )
        )
    return out
