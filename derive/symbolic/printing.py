"""Readable one-line Unicode and LaTeX forms of SymPy expressions (display only; the JSON strings
are plain str() so that sympify reads them back)."""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.str import StrPrinter

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_GREEK = {"alpha": "α", "pi": "π"}


class UnicodePrinter(StrPrinter):
    """StrPrinter with superscript powers, √, π, |x|, ≤/≥, Li₂ and a compact Piecewise."""

    def _print_Pow(self, expr, rational=False):
        base, exponent = expr.as_base_exp()
        if exponent in (sp.S.Half, -sp.S.Half):
            root = f"√{self._print(base)}" if base.is_Atom else f"√({self._print(base)})"
            return root if exponent > 0 else f"1/{root}"
        if exponent.is_Integer and exponent > 0:
            text = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Pow"], strict=True)
            return text + str(exponent).translate(_SUPERSCRIPT)
        if exponent.is_Integer and exponent < 0:
            denominator = sp.Pow(base, -exponent, evaluate=False) if exponent != -1 else base
            return "1/" + self.parenthesize(
                denominator, sp.printing.precedence.PRECEDENCE["Mul"], strict=True
            )
        text = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Pow"], strict=True)
        return f"{text}^({self._print(exponent)})"

    def _print_Symbol(self, expr):
        return _GREEK.get(expr.name, expr.name)

    def _print_Pi(self, expr):
        return "π"

    def _print_Exp1(self, expr):
        return "e"

    def _print_ImaginaryUnit(self, expr):
        return "i"

    def _print_re(self, expr):
        return self._part("Re", expr.args[0])

    def _print_im(self, expr):
        return self._part("Im", expr.args[0])

    def _part(self, name: str, arg: sp.Expr) -> str:
        """Re Li₂(z) for a function call, Re(z) otherwise."""
        text = self._print(arg)
        return f"{name} {text}" if isinstance(arg, sp.Function) else f"{name}({text})"

    def _print_Abs(self, expr):
        return f"|{self._print(expr.args[0])}|"

    def _print_polylog(self, expr):
        order, arg = expr.args
        if order.is_Integer and order > 0:
            return f"Li{str(order).translate(_SUBSCRIPT)}({self._print(arg)})"
        return f"polylog({self._print(order)}, {self._print(arg)})"

    def _print_Relational(self, expr):
        ops = {"<=": "≤", ">=": "≥", "!=": "≠", "==": "="}
        op = ops.get(expr.rel_op, expr.rel_op)
        return f"{self._print(expr.lhs)} {op} {self._print(expr.rhs)}"

    def _print_Piecewise(self, expr):
        parts = []
        for branch, cond in expr.args:
            where = "otherwise" if cond is sp.true else f"if {self._print(cond)}"
            parts.append(f"{self._print(branch)} {where}")
        return "{ " + "; ".join(parts) + " }"

    def _print_Integral(self, expr):
        ((var, lo, hi),) = expr.limits
        return f"∫_{self._print(lo)}^{self._print(hi)} {self._print(expr.function)} d{self._print(var)}"


def unicode(expr: sp.Basic) -> str:
    """One readable line: x·log(exp(x) + 1) + Li₂(−exp(x)) + π²/12."""
    text = UnicodePrinter().doprint(expr)
    return text.replace("*", "·").replace("-", "−")


MINUS = "−"
# A hyphen that is a minus sign: between spaces (a − b), in front of a number, name or bracket
# where no word or closing bracket precedes it (−1, [−0.1, = −x), or in an exponent (1.0e−31).
# Double hyphens (--expr) and hyphens inside words (heavy-ball) are left alone.
_BINARY_MINUS = re.compile(r"(?<=\s)-(?=\s)")
_UNARY_MINUS = re.compile(r"(?<![\w\-)\]′'.|])-(?=[\w(.π∞√|])")
_EXPONENT_MINUS = re.compile(r"(?<=\d[eE])-(?=\d)")


def minus_signs(text: str) -> str:
    """Formula and number text with "−" (U+2212) for every ASCII minus sign (see the patterns)."""
    for pattern in (_BINARY_MINUS, _UNARY_MINUS, _EXPONENT_MINUS):
        text = pattern.sub(MINUS, text)
    return text


def latex(expr: sp.Basic) -> str:
    """SymPy's LaTeX, with polylog(2, z) as Li₂(z) and Re, Im for real and imaginary parts."""
    return (
        sp.latex(expr, ln_notation=False)
        .replace(r"\operatorname{Li}_{2}", r"\operatorname{Li}_2")
        .replace(r"\operatorname{re}", r"\operatorname{Re}")
        .replace(r"\operatorname{im}", r"\operatorname{Im}")
    )


def latex_for_table(expr: sp.Basic) -> str:
    """LaTeX safe inside a Markdown table cell (no bare '|')."""
    return (
        latex(expr)
        .replace(r"\left|", r"\left\lvert ")
        .replace(r"\right|", r"\right\rvert ")
        .replace("|", r"\vert ")
    )
