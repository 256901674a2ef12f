"""Readable equations for algorithms and recurrences: Unicode text and LaTeX.

Used by `derive network --show`, docs/algorithms.md and the docstrings of generated code, so
a reader sees the same equation everywhere.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from derive.algorithms.ir import Recurrence, StateRef, Term
from derive.algorithms.spec import Algorithm
from derive.algorithms.symbols import GRAD, INNER, SQNORM, T, is_state

_SUB = str.maketrans("0123456789+-=()kj", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₖⱼ")
_GREEK = {
    "alpha": "α",
    "beta": "β",
    "gamma": "γ",
    "delta": "δ",
    "theta": "θ",
    "kappa": "κ",
    "rho": "ρ",
    "lam": "λ",
    "mu": "μ",
    "xi": "ξ",
    "nu": "ν",
}


def index_text(index: sp.Expr) -> str:
    """k − 1 → 'k-1', k + 1 → 'k+1', j → 'j', 3 → '3' (variable first, as the papers write it)."""
    index = sp.sympify(index)
    variables = sorted(index.free_symbols, key=lambda s: s.name)
    if len(variables) != 1:
        return str(index).replace(" ", "")
    (var,) = variables
    offset = sp.expand(index - var)
    if not offset.is_Integer or sp.expand(index - offset) != var:
        return str(index).replace(" ", "")
    if offset == 0:
        return var.name
    return f"{var.name}{'+' if offset > 0 else '-'}{abs(int(offset))}"


def subscript(index: str) -> str:
    """'k-1' → 'ₖ₋₁' when every character has a Unicode subscript, else '_{k-1}'."""
    compact = index.replace(" ", "")
    if all(c in "0123456789+-=()kj" for c in compact):
        return compact.translate(_SUB)
    return "_{" + compact + "}"


class _Names:
    """Display names of coefficients, constants, schedules and streams of one algorithm."""

    def __init__(self, algorithm: Algorithm) -> None:
        self.scalars: dict[str, str] = {}
        for c in algorithm.coefficients:
            self.scalars[c.variable] = c.symbol
        for c in algorithm.constants:
            self.scalars[c.name] = c.symbol
        self.schedules = {s.name: (s.symbol or s.name) for s in algorithm.resolved_schedules()}
        self.x_streams = {s.name: s.x_symbol for s in algorithm.streams}
        self.z_streams = {s.z_name: s.z_symbol for s in algorithm.streams}
        for let, _ in algorithm.lets:
            name = let.func.__name__
            self.x_streams.setdefault(name, _GREEK.get(name, name))


def names_of(algorithm: Algorithm) -> _Names:
    """The display names of one algorithm, for UnicodePrinter."""
    return _Names(algorithm)


class UnicodePrinter(StrPrinter):
    """Scalars as β, √κ, θₖ₋₁; states as zₖ₋₁; ∇f and T as functions."""

    def __init__(self, names: _Names) -> None:
        super().__init__()
        self.names = names

    def doprint(self, expr: sp.Basic) -> str:
        return super().doprint(expr).replace(" - ", " − ")

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        name = expr.name
        return self.names.scalars.get(name, _GREEK.get(name, name))

    def _print_AppliedUndef(self, expr: sp.Basic) -> str:
        name = expr.func.__name__
        args = [self._print(a) for a in expr.args]
        if expr.func == GRAD:
            return f"∇f({args[0]})"
        if expr.func == T:
            return f"T({args[0]})"
        if expr.func == INNER:
            return f"⟨{args[0]}, {args[1]}⟩"
        if expr.func == SQNORM:
            return f"‖{args[0]}‖²"
        if is_state(expr):
            symbol = self.names.x_streams.get(name) or self.names.z_streams.get(name, name)
            return symbol + subscript(index_text(expr.args[0]))
        symbol = self.names.schedules.get(name, _GREEK.get(name, name))
        indices = [index_text(a) for a in expr.args]
        if len(indices) == 1:
            return symbol + subscript(indices[0])
        return symbol + "_{" + ",".join(indices) + "}"

    def _print_Mul(self, expr: sp.Mul) -> str:
        return super()._print_Mul(expr).replace("*", "·")

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == sp.S.Half:
            base = self._print(expr.base)
            return f"√{base}" if expr.base.is_Atom else f"√({base})"
        if expr.exp.is_Integer and expr.exp > 1 and expr.base.is_Atom:
            return self._print(expr.base) + str(expr.exp).translate(
                str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
            )
        return super()._print_Pow(expr, rational)

    def _print_Sum(self, expr: sp.Sum) -> str:
        (var, lo, hi) = expr.limits[0]
        return f"Σ_{{{var}={index_text(lo)}}}^{{{index_text(hi)}}} {self._print(expr.function)}"


class _Latex(LatexPrinter):
    def __init__(self, names: _Names) -> None:
        super().__init__()
        self.names = names

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        symbol = self.names.scalars.get(expr.name)
        return _latex_symbol(symbol) if symbol else super()._print_Symbol(expr)

    def _print_AppliedUndef(self, expr: sp.Basic, exp: str | None = None) -> str:
        name = expr.func.__name__
        args = [self._print(a) for a in expr.args]
        if expr.func == GRAD:
            return rf"\nabla f\left({args[0]}\right)"
        if expr.func == T:
            return rf"T\left({args[0]}\right)"
        if expr.func == INNER:
            return rf"\left\langle {args[0]}, {args[1]} \right\rangle"
        if expr.func == SQNORM:
            return rf"\left\| {args[0]} \right\|^2"
        if is_state(expr):
            symbol = self.names.x_streams.get(name) or self.names.z_streams.get(name, name)
            return f"{_latex_symbol(symbol)}_{{{index_text(expr.args[0])}}}"
        symbol = self.names.schedules.get(name, name)
        indices = ",".join(index_text(a) for a in expr.args)
        return f"{_latex_symbol(symbol)}_{{{indices}}}"


def _latex_symbol(symbol: str) -> str:
    greek = {v: k for k, v in _GREEK.items()}
    if symbol in greek:
        name = greek[symbol]
        return "\\lambda" if name == "lam" else f"\\{name}"
    if symbol.endswith("'"):
        return symbol[:-1] + "'"
    return symbol


def _term_sympy(term: Term) -> sp.Expr:
    return term.to_sympy()


def combination_text(terms: tuple[Term, ...], printer: StrPrinter) -> str:
    """Σ terms as `T(zₖ) + β·zₖ − β·zₖ₋₁`, in the IR's order (T-terms, newest states first)."""
    if not terms:
        return "0"
    parts: list[str] = []
    for term in terms:
        coefficient = term.coefficient
        negative = not coefficient.is_Add and coefficient.could_extract_minus_sign()
        magnitude = -coefficient if negative else coefficient
        body = _body_text(term, printer)
        if magnitude == 1:
            text = body
        elif magnitude.is_Add:
            text = f"({printer.doprint(magnitude)})·{body}"
        else:
            text = f"{printer.doprint(magnitude)}·{body}"
        if term.history is not None:
            lo, hi = (index_text(b) for b in term.history)
            text = f"Σ_{{j={lo}}}^{{{hi}}} {text}"
        sign = "−" if negative else "+"
        parts.append(
            ("−" + text) if not parts and negative else text if not parts else f" {sign} {text}"
        )
    return "".join(parts)


def _body_text(term: Term, printer: StrPrinter) -> str:
    if term.state is not None:
        return _state_text(term.state, printer)
    if term.injected:
        return "u"
    assert term.t_argument is not None
    return f"T({combination_text(term.t_argument, printer)})"


def _state_text(ref: StateRef, printer: StrPrinter) -> str:
    names: _Names = printer.names  # type: ignore[attr-defined]
    return names.z_streams.get(ref.stream, ref.stream) + subscript(index_text(ref.index))


def recurrence_lines(recurrence: Recurrence) -> list[str]:
    """The derived z-space recurrence, one Unicode line per update, initial conditions last."""
    printer = UnicodePrinter(_Names(recurrence.algorithm))
    lines = []
    for update in recurrence.updates:
        target = _state_text(StateRef(update.stream, sp.Symbol("k") + 1), printer)
        lines.append(f"{target} = {combination_text(update.terms, printer)}")
    initial = initial_conditions_text(recurrence)
    if initial:
        lines.append(f"with {initial}")
    return lines


def initial_conditions_text(recurrence: Recurrence) -> str:
    """'z₋₁ = z₀, μ₀ = 0' (empty when the recurrence needs none)."""
    printer = UnicodePrinter(_Names(recurrence.algorithm))
    parts = [
        f"{_state_text(c.target, printer)} = {combination_text(c.terms, printer)}"
        for c in recurrence.initial
    ]
    return ", ".join(parts)


def output_text(recurrence: Recurrence) -> str:
    """What the network returns at k = depth, e.g. 'z_depth' or '(1 + δ)·z_depth − δ·z_{depth−1}'."""
    printer = UnicodePrinter(_Names(recurrence.algorithm))
    return combination_text(recurrence.output, printer).replace("ₖ", "_K")


def algorithm_lines(algorithm: Algorithm) -> list[str]:
    """The x-space iteration as stated, one Unicode line per let/update."""
    printer = UnicodePrinter(_Names(algorithm))
    lines = []
    for lhs, rhs in algorithm.lets:
        lines.append(f"{printer.doprint(lhs)} = {printer.doprint(rhs)}")
    for update in algorithm.updates:
        stream = algorithm.stream(update.stream)
        target = stream.x_symbol + subscript("k+1")
        if update.argmin is not None:
            var = printer.doprint(update.argmin.variable)
            lines.append(f"{target} = argmin_{var} {printer.doprint(update.argmin.expr)}")
        else:
            lines.append(f"{target} = {printer.doprint(update.rhs)}")
    if algorithm.initial:
        parts = [f"{printer.doprint(a)} = {printer.doprint(b)}" for a, b in algorithm.initial]
        lines.append("with " + ", ".join(parts))
    return lines


def recurrence_latex(recurrence: Recurrence) -> list[str]:
    """The derived recurrence in LaTeX, one equation per update."""
    printer = _Latex(_Names(recurrence.algorithm))
    lines = []
    for update in recurrence.updates:
        target = printer.doprint(StateRef(update.stream, sp.Symbol("k") + 1).to_sympy())
        body = printer.doprint(update.to_sympy())
        lines.append(f"{target} = {body}")
    return lines


def algorithm_latex(algorithm: Algorithm) -> list[str]:
    """The x-space iteration in LaTeX."""
    printer = _Latex(_Names(algorithm))
    lines = [f"{printer.doprint(lhs)} = {printer.doprint(rhs)}" for lhs, rhs in algorithm.lets]
    for update in algorithm.updates:
        stream = algorithm.stream(update.stream)
        target = f"{_latex_symbol(stream.x_symbol)}_{{k+1}}"
        if update.argmin is not None:
            var = printer.doprint(update.argmin.variable)
            lines.append(
                rf"{target} = \operatorname{{argmin}}_{{{var}}} {printer.doprint(update.argmin.expr)}"
            )
        else:
            lines.append(f"{target} = {printer.doprint(update.rhs)}")
    return lines
