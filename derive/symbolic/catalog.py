"""The built-in activations: Φ as formula text (read by the safe parser), aliases and parameters."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cache

import sympy as sp

from derive.errors import UserError
from derive.symbolic import symbols
from derive.symbolic.expr_parser import FUNCTIONS, parse_expression


@dataclass(frozen=True)
class Parameter:
    """A numeric parameter of an activation (kept symbolic unless the user gives a value)."""

    name: str  # also the SymPy symbol name and the CLI option (--alpha, --a)
    low: int
    high: int | None
    low_inclusive: bool
    samples: tuple[str, ...]  # values for the numeric proof while the parameter stays symbolic
    default: str  # the usual framework default, used where a number is unavoidable (smoothness)
    description: str

    @property
    def symbol(self) -> sp.Symbol:
        return symbols.PARAMETERS[self.name]

    @property
    def range_text(self) -> str:
        low = f"{self.low} {'<=' if self.low_inclusive else '<'} {self.name}"
        return f"{low} <= {self.high}" if self.high is not None else low

    def parse(self, text: str) -> sp.Rational:
        """The exact value of a decimal string (0.2 → 1/5), checked against the allowed range."""
        option = f"--{self.name}"
        if len(text) > 40:
            raise UserError(f"{option}: value too long")
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            raise UserError(f"{option}: {text!r} is not a number") from None
        if not value.is_finite():
            raise UserError(f"{option}: {text!r} is not a finite number")
        if value != 0 and not -30 <= value.adjusted() <= 30:
            raise UserError(
                f"{option}: {text!r} is out of range (magnitude 1e-30 to 1e30; {self.range_text})"
            )
        return self.check(sp.Rational(str(value)), text)

    def coerce(self, raw: object) -> sp.Rational:
        """An exact value from text, an int, a float (read as its decimal repr) or a rational."""
        if isinstance(raw, bool):
            raise UserError(f"--{self.name}: {raw!r} is not a number")
        if isinstance(raw, str):
            return self.parse(raw)
        if isinstance(raw, float):
            return self.parse(repr(raw))
        if isinstance(raw, (int, Fraction, sp.Rational)):
            return self.check(sp.Rational(raw.numerator, raw.denominator), str(raw))
        raise UserError(f"--{self.name}: {raw!r} is not a number")

    def check(self, value: sp.Rational, text: str) -> sp.Rational:
        above_low = value >= self.low if self.low_inclusive else value > self.low
        if not above_low or (self.high is not None and value > self.high):
            raise UserError(f"--{self.name}: {text!r} is out of range ({self.range_text})")
        return value


ALPHA = Parameter(
    "alpha",
    Decimal(0),
    Decimal(1),
    True,
    ("0.01", "0.3"),
    "0.01",
    "slope for x <= 0 (0 <= alpha <= 1)",
)
A = Parameter(
    "a", Decimal(0), None, False, ("0.5", "1", "2"), "1", "scale of the negative branch (a > 0)"
)


@dataclass(frozen=True)
class Activation:
    """A built-in activation Φ(x)."""

    name: str
    formula: str  # Φ(x) as text in x (and its parameters), read by the safe parser
    description: str
    parameters: tuple[Parameter, ...] = ()
    aliases: tuple[str, ...] = ()
    in_papers: bool = False

    @property
    def phi(self) -> sp.Expr:
        return _parse_builtin(self.formula, tuple(p.name for p in self.parameters))


@cache
def _parse_builtin(formula: str, parameter_names: tuple[str, ...]) -> sp.Expr:
    names = {"x": symbols.x, **{n: symbols.PARAMETERS[n] for n in parameter_names}}
    return parse_expression(formula, names, what="built-in activation")


ACTIVATIONS: tuple[Activation, ...] = (
    Activation("sigmoid", "1/(1 + exp(-x))", "logistic sigmoid", in_papers=True),
    Activation("tanh", "tanh(x)", "hyperbolic tangent", in_papers=True),
    Activation("softplus", "log(1 + exp(x))", "smooth ReLU", in_papers=True),
    Activation("softsign", "x/(1 + Abs(x))", "x/(1 + |x|)", in_papers=True),
    Activation("relu", "Piecewise((x, x > 0), (0, True))", "rectified linear unit", in_papers=True),
    Activation(
        "leaky_relu",
        "Piecewise((x, x > 0), (alpha*x, True))",
        "ReLU with slope alpha for x <= 0",
        (ALPHA,),
        in_papers=True,
    ),
    Activation(
        "elu",
        "Piecewise((x, x > 0), (a*(exp(x) - 1), True))",
        "exponential linear unit",
        (A,),
        in_papers=True,
    ),
    Activation("swish", "x/(1 + exp(-x))", "x * sigmoid(x)", aliases=("silu",), in_papers=True),
    Activation(
        "gelu",
        "x*(1 + erf(x/sqrt(2)))/2",
        "x * standard normal CDF (exact, not the tanh approximation)",
    ),
    Activation("mish", "x*tanh(log(1 + exp(x)))", "x * tanh(softplus(x))"),
    Activation(
        "hardtanh", "Piecewise((-1, x < -1), (x, x <= 1), (1, True))", "tanh clipped to [-1, 1]"
    ),
    Activation("relu6", "Piecewise((0, x < 0), (x, x <= 6), (6, True))", "ReLU capped at 6"),
    Activation(
        "hardsigmoid",
        "Piecewise((0, x <= -3), (x/6 + 1/2, x < 3), (1, True))",
        "relu6(x + 3)/6 (PyTorch)",
    ),
    Activation(
        "hardswish",
        "Piecewise((0, x <= -3), (x*(x + 3)/6, x < 3), (x, True))",
        "x * relu6(x + 3)/6 (PyTorch)",
    ),
    Activation("identity", "x", "no activation (linear)"),
)

_BY_NAME = {act.name: act for act in ACTIVATIONS}
_ALIASES = {alias: act.name for act in ACTIVATIONS for alias in act.aliases}


def names() -> list[str]:
    """Canonical names of the built-in activations, in catalog order."""
    return [act.name for act in ACTIVATIONS]


def lookup(name: str) -> Activation:
    """The activation called `name` (or an alias); UserError with the nearest name otherwise."""
    key = name.strip().lower().replace("-", "_")
    if key in _BY_NAME:
        return _BY_NAME[key]
    if key in _ALIASES:
        return _BY_NAME[_ALIASES[key]]
    choices = [*_BY_NAME, *_ALIASES]
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UserError(f"unknown activation {name!r}{hint} (run 'derive activation --list')")


def parameter_values(
    activation: Activation, given: Mapping[str, object]
) -> dict[str, sp.Rational | None]:
    """Exact values for the activation's parameters (None: keep symbolic); UserError for a value
    given to an activation without that parameter, or out of range."""
    known = {p.name: p for p in activation.parameters}
    for name, value in given.items():
        if value is not None and name not in known:
            raise UserError(
                f"--{name} does not apply to {activation.name} (it has no parameter {name!r})"
            )
    return {
        name: None if given.get(name) is None else spec.coerce(given[name])
        for name, spec in known.items()
    }


def numeric_samples(
    activation: Activation | None, values: Mapping[str, sp.Rational | None]
) -> list[dict]:
    """Parameter values for the numeric proof: the given value, or every sample of a symbolic one."""
    if activation is None or not activation.parameters:
        return []
    combos: list[dict] = [{}]
    for spec in activation.parameters:
        value = values[spec.name]
        options = [value] if value is not None else [sp.Rational(v) for v in spec.samples]
        combos = [{**combo, spec.symbol: option} for combo in combos for option in options]
    return combos


def with_defaults(
    activation: Activation | None, values: Mapping[str, sp.Rational | None]
) -> tuple[dict, str]:
    """({symbol: value}, label) with symbolic parameters at their usual defaults (for smoothness)."""
    subs, labels = {}, []
    for spec in activation.parameters if activation else ():
        value = values.get(spec.name)
        if value is None:
            value = sp.Rational(spec.default)
            labels.append(f"{spec.name} = {spec.default} (default)")
        subs[spec.symbol] = value
    return subs, ", ".join(labels)


#: Largest argument (in expression nodes) a built-in activation is applied to inside --expr: each
#: call copies its argument into Φ up to three times, so nesting grows exponentially.
MAX_ARGUMENT_NODES = 2000


def _small_enough(arg: sp.Expr) -> bool:
    """At most MAX_ARGUMENT_NODES nodes (counting stops there: the cost is bounded too)."""
    for count, _ in enumerate(sp.preorder_traversal(arg), start=1):
        if count > MAX_ARGUMENT_NODES:
            return False
    return True


def _as_function(activation: Activation) -> Callable[[sp.Expr], sp.Expr]:
    """Φ as a function of one argument, with parameters at their usual defaults."""
    defaults = {spec.symbol: sp.Rational(spec.default) for spec in activation.parameters}
    phi = activation.phi.subs(defaults)

    def call(arg: sp.Expr) -> sp.Expr:
        if not _small_enough(arg):
            raise UserError(
                f"--expr: {activation.name}(...) of an argument of more than "
                f"{MAX_ARGUMENT_NODES} nodes (built-in activations nested too deeply)"
            )
        return phi.subs(symbols.x, arg)

    return call


@cache
def expression_functions() -> dict[str, tuple[Callable[..., sp.Expr], tuple[int, ...]]]:
    """What an --expr may call: the plain functions (exp, log, ...) and every built-in activation
    (and alias) as a function of one argument, expanded to its SymPy definition; parameters take
    their usual defaults (elu: a = 1, leaky_relu: alpha = 0.01). A plain function keeps its own
    meaning where the names clash (tanh is tanh either way)."""
    builtins = {
        name: (_as_function(act), (1,)) for act in ACTIVATIONS for name in (act.name, *act.aliases)
    }
    return {**builtins, **FUNCTIONS}
