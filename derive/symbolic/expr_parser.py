"""Safe parsing of formula text into SymPy: a whitelist walk over Python's AST.

Nothing is ever evaluated as code: the walk builds SymPy objects directly from numbers, allowed
names, arithmetic, calls to whitelisted functions and `Piecewise((expr, cond), ..., (expr, True))`.
Everything else (attributes, subscripts, lambdas, strings, keywords, ...) is rejected with a
one-line UserError.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from itertools import pairwise

import sympy as sp

from derive.errors import UserError

MAX_LENGTH = 500
MAX_NODES = 400
MAX_DIGITS = 40
MAX_MAGNITUDE = Decimal(10) ** 12
MIN_MAGNITUDE = Decimal(10) ** -12
MAX_EXPONENT = 100
MAX_POWER_DIGITS = 300

#: Functions a user expression may call, with their allowed numbers of arguments.
FUNCTIONS: dict[str, tuple[Callable[..., sp.Expr], tuple[int, ...] | None]] = {
    "exp": (sp.exp, (1,)),
    "log": (sp.log, (1,)),
    "sqrt": (sp.sqrt, (1,)),
    "sin": (sp.sin, (1,)),
    "cos": (sp.cos, (1,)),
    "tan": (sp.tan, (1,)),
    "sinh": (sp.sinh, (1,)),
    "cosh": (sp.cosh, (1,)),
    "tanh": (sp.tanh, (1,)),
    "atan": (sp.atan, (1,)),
    "asinh": (sp.asinh, (1,)),
    "erf": (sp.erf, (1,)),
    "erfc": (sp.erfc, (1,)),
    "Abs": (sp.Abs, (1,)),
    "abs": (sp.Abs, (1,)),
    "sign": (sp.sign, (1,)),
    "Heaviside": (sp.Heaviside, (1,)),
    "Max": (sp.Max, None),
    "Min": (sp.Min, None),
}
#: Extra functions for the papers' printed formulas (trusted data, same safe walk).
PAPER_FUNCTIONS = {**FUNCTIONS, "polylog": (sp.polylog, (2,))}
CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

_COMPARISONS = {
    ast.Lt: sp.Lt,
    ast.LtE: sp.Le,
    ast.Gt: sp.Gt,
    ast.GtE: sp.Ge,
    ast.Eq: sp.Eq,
    ast.NotEq: sp.Ne,
}
_DESCRIBE = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.IfExp: "conditional expressions (use Piecewise)",
    ast.NamedExpr: "assignment expressions",
    ast.JoinedStr: "strings",
    ast.List: "lists",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Starred: "starred arguments",
    ast.Await: "await",
}


class _Builder:
    """Turns one parsed AST into SymPy, enforcing the whitelist."""

    def __init__(self, text: str, names: Mapping[str, sp.Symbol], functions: Mapping, what: str):
        self.text = text
        self.names = names
        self.functions = functions
        self.what = what

    def fail(self, message: str) -> UserError:
        return UserError(f"{self.what}: {message}")

    def expr(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.UnaryOp):
            operand = self.expr(node.operand)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            raise self.fail(f"operator {type(node.op).__name__} is not allowed")
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.fail("comparisons are only allowed as Piecewise conditions")
        if isinstance(node, ast.Tuple):
            raise self.fail("tuples are only allowed as Piecewise((expr, condition), ...) pairs")
        raise self.fail(f"{_DESCRIBE.get(type(node), type(node).__name__)} not allowed")

    def constant(self, node: ast.Constant) -> sp.Expr:
        value = node.value
        if isinstance(value, bool) or value is None or value is Ellipsis:
            raise self.fail(f"{value!r} is not allowed here")
        if isinstance(value, (str, bytes)):
            raise self.fail("strings are not allowed")
        if isinstance(value, complex):
            raise self.fail("complex numbers are not allowed")
        text = ast.get_source_segment(self.text, node) or repr(value)
        text = text.replace("_", "")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise self.fail(f"cannot read the number {text!r}") from None
        if not number.is_finite():
            raise self.fail(f"the number {text!r} is not finite")
        if number != 0 and not MIN_MAGNITUDE <= abs(number) <= MAX_MAGNITUDE:
            raise self.fail(f"the number {text!r} is out of range (1e-12 to 1e12)")
        if len(number.as_tuple().digits) > MAX_DIGITS:
            raise self.fail(f"the number {text!r} has more than {MAX_DIGITS} digits")
        return sp.Integer(int(number)) if isinstance(value, int) else sp.Rational(str(number))

    def name(self, name: str) -> sp.Expr:
        if name.startswith("__") or name.endswith("__"):
            raise self.fail(f"the name {name!r} is not allowed")
        if name in self.names:
            return self.names[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in self.functions or name == "Piecewise":
            raise self.fail(f"{name} is a function: call it, e.g. {name}(x)")
        allowed = ", ".join(sorted(self.names))
        raise self.fail(
            f"unknown name {name!r}: the expression must be a function of {allowed} alone"
        )

    def binop(self, node: ast.BinOp) -> sp.Expr:
        left, right = self.expr(node.left), self.expr(node.right)
        op = node.op
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            return left / right
        if isinstance(op, ast.Pow):
            return self.power(left, right)
        raise self.fail(f"operator {type(op).__name__} is not allowed")

    def power(self, base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
        if exponent.is_Number:
            if abs(exponent) > MAX_EXPONENT:
                raise self.fail(f"exponent {exponent} is too large (at most {MAX_EXPONENT})")
            if base.is_Number and base != 0:
                size = abs(float(exponent)) * abs(math.log10(abs(float(base))))
                if size > MAX_POWER_DIGITS:
                    raise self.fail("constant power is too large")
        return base**exponent

    def call(self, node: ast.Call) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail("only calls of plain function names are allowed")
        name = node.func.id
        if node.keywords:
            raise self.fail(f"keyword arguments are not allowed in {name}(...)")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise self.fail("starred arguments are not allowed")
        if name == "Piecewise":
            return self.piecewise(node.args)
        if name.startswith("__") or name not in self.functions:
            known = ", ".join(sorted({*self.functions, "Piecewise"}))
            raise self.fail(f"unknown function {name!r} (allowed: {known})")
        function, arities = self.functions[name]
        if arities is not None and len(node.args) not in arities:
            raise self.fail(f"{name} takes {' or '.join(map(str, arities))} argument(s)")
        if arities is None and len(node.args) < 2:
            raise self.fail(f"{name} takes at least 2 arguments")
        args = [self.expr(arg) for arg in node.args]
        try:
            return function(*args)
        except (TypeError, ValueError) as exc:
            raise self.fail(f"cannot build {name}(...): {exc}") from None

    def piecewise(self, args: list[ast.expr]) -> sp.Expr:
        if not args:
            raise self.fail("Piecewise needs at least one (expr, condition) pair")
        pairs = []
        for arg in args:
            if not isinstance(arg, ast.Tuple) or len(arg.elts) != 2:
                raise self.fail("Piecewise takes (expr, condition) pairs")
            pairs.append((self.expr(arg.elts[0]), self.condition(arg.elts[1])))
        try:
            return sp.Piecewise(*pairs)
        except (TypeError, ValueError) as exc:
            raise self.fail(f"cannot build Piecewise: {exc}") from None

    def condition(self, node: ast.AST) -> sp.Basic:
        if isinstance(node, ast.Constant) and node.value is True:
            return sp.true
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(value) for value in node.values]
            return sp.And(*parts) if isinstance(node.op, ast.And) else sp.Or(*parts)
        if isinstance(node, ast.Compare):
            terms = [self.expr(node.left), *(self.expr(c) for c in node.comparators)]
            relations = []
            for op, (lhs, rhs) in zip(node.ops, pairwise(terms), strict=True):
                if type(op) not in _COMPARISONS:
                    raise self.fail(f"comparison {type(op).__name__} is not allowed")
                relations.append(_COMPARISONS[type(op)](lhs, rhs))
            return sp.And(*relations)
        raise self.fail(
            "a Piecewise condition must be a comparison, and/or of comparisons, or True"
        )


def parse_expression(
    text: str,
    names: Mapping[str, sp.Symbol],
    *,
    functions: Mapping = FUNCTIONS,
    what: str = "expression",
) -> sp.Expr:
    """Parse `text` into a SymPy expression in the given `names`; raise UserError on anything else."""
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{what}: empty expression")
    if len(text) > MAX_LENGTH:
        raise UserError(f"{what}: expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise UserError(f"{what}: malformed expression {text!r} ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError):
        raise UserError(f"{what}: malformed expression") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise UserError(f"{what}: expression too complex (more than {MAX_NODES} syntax nodes)")
    builder = _Builder(text.strip(), names, functions, what)
    try:
        result = builder.expr(tree.body)
    except RecursionError:
        raise UserError(f"{what}: expression nested too deeply") from None
    if not isinstance(result, sp.Expr):
        raise UserError(f"{what}: not an expression")
    if result.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        raise UserError(f"{what}: the expression is undefined (division by zero?)")
    return result
