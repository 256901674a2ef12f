"""--expr may call the built-in activations as functions: parsed by the same safe walk, expanded to
their SymPy definitions, and giving the same Ψ as the named activation."""

from __future__ import annotations

import mpmath as mp
import pytest
import sympy as sp
from symbolic_cache import derive_activation  # the named energy, shared with the other tests

from derive.cli import main
from derive.errors import UserError
from derive.symbolic import catalog, derive_expression
from derive.symbolic.symbols import x
from derive.symbolic.user_input import parse_user_phi

POINTS = (-6.5, -2.2, -0.4, 0.3, 1.9, 5.5)


def test_builtins_expand_to_their_definitions():
    assert parse_user_phi("softplus(x)") == sp.log(1 + sp.exp(x))
    assert parse_user_phi("sigmoid(x)") == 1 / (1 + sp.exp(-x))
    assert parse_user_phi("x*sigmoid(x)") == x / (1 + sp.exp(-x))
    assert parse_user_phi("silu(x)") == parse_user_phi("swish(x)") == x / (1 + sp.exp(-x))
    assert parse_user_phi("relu(x - 1)").subs(x, 3) == 2
    assert parse_user_phi("relu(x - 1)").subs(x, sp.Rational(1, 2)) == 0
    assert parse_user_phi("elu(x)").subs(x, -1) == sp.exp(-1) - 1  # a = 1
    assert parse_user_phi("leaky_relu(x)").subs(x, -2) == sp.Rational(-2, 100)  # alpha = 0.01
    assert parse_user_phi("tanh(2*x)") == sp.tanh(2 * x)
    # mish's energy through --expr is checked with `make test-slow`; its expansion is checked here
    assert parse_user_phi("mish(x)") == x * sp.tanh(sp.log(1 + sp.exp(x)))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("softplux(x)", "unknown function 'softplux'"),
        ("relu(x, 2)", "relu takes 1 argument"),
        ("relu", "relu is a function: call it"),
    ],
)
def test_unknown_or_misused_names_are_one_clear_error(text, fragment):
    with pytest.raises(UserError, match=fragment) as info:
        parse_user_phi(text)
    message = str(info.value)
    assert "\n" not in message
    if "unknown function" in message:
        for name in catalog.names():
            assert name in message  # the known ones are listed


def test_deeply_nested_builtins_are_refused_before_they_grow():
    """swish copies its argument twice: 30 levels would be 2³⁰ copies. Refused, and quickly."""
    text = "swish(" * 30 + "x" + ")" * 30
    with pytest.raises(UserError, match="nested too deeply"):
        parse_user_phi(text)
    assert parse_user_phi("mish(mish(x))").subs(x, 0) == 0  # a little nesting is fine


def test_unknown_name_on_the_command_line_exits_2_with_one_line(capsys):
    assert main(["activation", "--expr", "softplux(x)"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "softplus" in lines[0] and "mish" in lines[0]


def _psi(record):
    return sp.lambdify(sp.Symbol("x"), sp.sympify(record.to_json()["psi"]), "mpmath")


HAND_PHI = {
    "softplus(x)": ("softplus", lambda t: mp.log1p(mp.exp(t))),
    "sigmoid(x)": ("sigmoid", lambda t: 1 / (1 + mp.exp(-t))),
    "x*sigmoid(x)": ("swish", lambda t: t / (1 + mp.exp(-t))),
    "relu(x)": ("relu", lambda t: max(t, 0)),
    "gelu(x)": ("gelu", lambda t: t * (1 + mp.erf(t / mp.sqrt(2))) / 2),
    "elu(x)": ("elu", lambda t: t if t > 0 else mp.exp(t) - 1),
    "tanh(x)": ("tanh", mp.tanh),
    "mish(x)": ("mish", lambda t: t * mp.tanh(mp.log1p(mp.exp(t)))),
}


# mish through --expr repeats the slowest derivation (Ψ with complex dilogarithms) on the same
# path as the cheaper built-ins above it: it runs with `make test-slow`.
@pytest.mark.parametrize(
    "text",
    [
        pytest.param(text, marks=pytest.mark.slow) if text == "mish(x)" else text
        for text in sorted(HAND_PHI)
    ],
)
def test_each_builtin_via_expr_gives_the_named_energy(text):
    name, phi = HAND_PHI[text]
    via_expr = _psi(derive_expression(text, seconds=None))
    named = _psi(derive_activation(name, **({"a": "1"} if name == "elu" else {})))
    with mp.workdps(30):
        for v in POINTS:
            v = mp.mpf(v)
            expected = mp.quad(phi, [0, v])  # independent of both derivations
            assert abs(mp.re(via_expr(v)) - expected) < mp.mpf(10) ** -22, (text, v)
            assert abs(mp.re(via_expr(v)) - mp.re(named(v))) < mp.mpf(10) ** -22, (text, v)
