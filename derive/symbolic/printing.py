"""Readable one-line Unicode and LaTeX forms of SymPy expressions (display only; the JSON strings
are plain str() so that sympify reads them back)."""

from __future__ import annotations

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


def latex(expr: sp.Basic) -> str:
    """SymPy's LaTeX, with polylog(2, z) as Li₂(z)."""
    return sp.latex(expr, ln_notation=False).replace(
        r"\operatorname{Li}_{2}", r"\operatorname{Li}_2"
    )


def latex_for_table(expr: sp.Basic) -> str:
    """LaTeX safe inside a Markdown table cell (no bare '|')."""
    return (
        latex(expr)
        .replace(r"\left|", r"\left\lvert ")
        .replace(r"\right|", r"\right\rvert ")
        .replace("|", r"\vert ")
    )
