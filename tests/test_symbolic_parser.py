"""The safe expression parser: what it builds, and everything it refuses (without running code)."""

from __future__ import annotations

import os

import pytest
import sympy as sp

from derive.errors import UserError
from derive.symbolic.expr_parser import PAPER_FUNCTIONS, parse_expression

x = sp.Symbol("x", real=True)
NAMES = {"x": x}


def parse(text: str) -> sp.Expr:
    return parse_expression(text, NAMES, what="--expr")


def test_arithmetic_and_functions_build_the_expected_sympy():
    assert parse("x*tanh(x) + 2**x - exp(-x)/3") == x * sp.tanh(x) + 2**x - sp.exp(-x) / 3
    assert parse("sqrt(x**2 + 1) - Abs(x) + pi + E") == sp.sqrt(x**2 + 1) - sp.Abs(x) + sp.pi + sp.E
    assert parse("Max(0, Min(1, x))") == sp.Max(0, sp.Min(1, x))


def test_decimals_are_exact_rationals():
    assert parse("0.1*x") == sp.Rational(1, 10) * x
    assert parse("1.0507009873554804934193349852946") == sp.Rational(
        "1.0507009873554804934193349852946"
    )


def test_piecewise_with_comparisons_and_boolean_conditions():
    got = parse("Piecewise((x, x > 0), (0.5*x, -1 < x <= 0), (-1, True))")
    expected = sp.Piecewise((x, x > 0), (x / 2, (x > -1) & (x <= 0)), (-1, True))
    assert got == expected
    assert parse("Piecewise((1, x > 1 or x < -1), (x, True))").subs(x, 2) == 1


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "__import__('os').system('touch /tmp/derive-pwned')",
            "only calls of plain function names",
        ),
        ("__import__('os')", "unknown function '__import__'"),
        ("x.real", "attribute"),
        ("x[0]", "subscripts"),
        ("(lambda: 1)()", "only calls of plain function names"),
        ("[x for x in (1, 2)]", "comprehensions"),
        ("open('f')", "unknown function 'open'"),
        ("exp('f')", "strings"),
        ("exp(x=1)", "keyword"),
        ("eval('1')", "unknown function 'eval'"),
        ("getattr(x, 'y')", "unknown function"),
        ("x + y", "function of x alone"),
        ("__class__", "not allowed"),
        ("9**9**9**9", "exponent"),
        ("10**400", "exponent"),
        ("1e300*x", "out of range"),
        ("x if x > 0 else 0", "Piecewise"),
        ("x > 0", "only allowed as Piecewise conditions"),
        ("(x, x)", "tuples"),
        ("1/0", "undefined"),
        ("x +", "malformed"),
        ("", "empty"),
        ("x" + "+x" * 300, "longer than"),
        ("exp", "function"),
        ("log(x, 2, 3)", "argument"),
        ("Piecewise((x, x > y), (0, True))", "function of x alone"),
        ("x % 2", "not allowed"),
        ("1j*x", "complex"),
    ],
)
def test_rejects_with_a_clear_message(text, fragment):
    with pytest.raises(UserError) as info:
        parse(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert message.startswith("--expr:")


def test_nothing_is_executed():
    marker = "/tmp/derive-parser-never-created"
    for text in (f"__import__('os').system('touch {marker}')", f"open('{marker}', 'w')"):
        with pytest.raises(UserError):
            parse(text)
    assert not os.path.exists(marker)


def test_deep_nesting_within_the_length_limit_is_handled():
    assert parse("(" * 200 + "x" + ")" * 200) == x
    assert parse("-" * 100 + "x") == x
    with pytest.raises(UserError, match="too complex"):
        parse("-" * 400 + "x")


def test_polylog_only_for_the_papers_formulas():
    with pytest.raises(UserError, match="unknown function 'polylog'"):
        parse("polylog(2, x)")
    u = sp.Symbol("u", real=True)
    assert parse_expression(
        "polylog(2, -exp(u))", {"u": u}, functions=PAPER_FUNCTIONS
    ) == sp.polylog(2, -sp.exp(u))
