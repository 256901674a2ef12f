"""A user's TOML iteration: derived like the built-ins, hostile or malformed specs refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from derive.algorithms import get_algorithm, recurrence_of
from derive.algorithms.symbols import T, k, vector
from derive.cli import main
from derive.codegen.generate import generate
from derive.errors import UserError
from derive.models.registry import load_python_file

TWO_MOMENTA = """
name = "two_momenta"
title = "Heavy ball with a second momentum"
states = ["x"]
[coefficients]
beta = 0.3
gamma = { default = 0.1, min = -1, max = 1 }
[let]
"y[k]" = "x[k] + beta*(x[k] - x[k-1])"
[update]
"x[k+1]" = "y[k] - grad(y[k]) + gamma*(x[k-1] - x[k-2])"
[initial]
"x[-1]" = "x[0]"
"x[-2]" = "x[0]"
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_spec_derives_the_expected_recurrence(tmp_path: Path) -> None:
    recurrence = recurrence_of(get_algorithm(write(tmp_path, TWO_MOMENTA)))
    z = vector("z")
    beta, gamma = (recurrence.algorithm.coefficient(n).sym for n in ("beta", "gamma"))
    expected = T(z(k) + beta * (z(k) - z(k - 1))) + gamma * (z(k - 1) - z(k - 2))
    (update,) = recurrence.updates
    assert (update.to_sympy() - expected).expand() == 0


def test_generated_fc_network_equals_the_iteration(tmp_path: Path) -> None:
    spec = write(tmp_path, TWO_MOMENTA)
    module_path = tmp_path / "two_momenta_fc.py"
    module_path.write_text(generate(spec, "fc").source, encoding="utf-8")
    module = load_python_file(str(module_path))
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    u = (q * np.sqrt([0.3, 0.5, 0.7, 0.9])) @ q.T
    z0 = rng.normal(size=(2, 4))
    net = module.build_tied(torch.tensor(u @ u), "tanh", 7)

    def grad(x: np.ndarray) -> np.ndarray:
        return x - np.tanh(x @ u) @ u

    xs = [z0 @ u] * 3  # x_{-2} = x_{-1} = x_0
    for _ in range(7):
        x, x1, x2 = xs[-1], xs[-2], xs[-3]
        y = x + 0.3 * (x - x1)
        xs.append(y - grad(y) + 0.1 * (x1 - x2))
    np.testing.assert_allclose(
        net(torch.tensor(z0)).numpy(), np.linalg.solve(u, xs[-1].T).T, atol=1e-10
    )


@pytest.mark.parametrize(
    "update,message",
    [
        ("__import__('os').system('echo pwned')", "may be called"),
        ("x[k].__class__", "Attribute"),
        ("x[k] - grad(x[k]", "malformed"),
        ("x[k]*x[k]", "product of two vectors"),
        ("x[k] - grad(sum(x[j], j, 0, k))", "not on a sum over the history"),
        ("x[k] - grad(x[k]) + z", "unknown name 'z'"),
        ("x[k] - grad(x[k]) + 9**99", "exponent too large"),
        ("1", "must be a vector"),
    ],
)
def test_bad_updates_are_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], update: str, message: str
) -> None:
    spec = write(
        tmp_path,
        f'name = "bad"\n[update]\n"x[k+1]" = "{update}"\n'.replace(
            "\"__import__('os').system('echo pwned')\"", "\"__import__('os').system('echo pwned')\""
        ),
    )
    code = main(["network", "--algo", spec, "--form", "fc", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "text,message",
    [
        ("name = 'k'\n[update]\n'x[k+1]' = 'x[k]'", "not a usable name"),
        ("name = 'ok'\nstates = []\n", "non-empty list"),
        ("name = 'ok'\n[coefficients]\nb = 'big'\n[update]\n'x[k+1]' = 'x[k]'", "finite number"),
        ("name = 'ok'\nwhat = 1\n", "unknown key"),
        ("name = 'ok'\n[update]\n'x[k]' = 'x[k]'", r"index k\+1"),
        ("name = = 'ok'", "not valid TOML"),
    ],
)
def test_malformed_specs_are_user_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        get_algorithm(write(tmp_path, text))


def test_multi_state_spec_has_fc_and_multi_stream_conv_form(tmp_path: Path) -> None:
    text = """
name = "qhm"
states = ["x", "m"]
[coefficients]
beta = 0.9
nu = 0.7
[update]
"m[k+1]" = "beta*m[k] + (1 - beta)*grad(x[k])"
"x[k+1]" = "x[k] - (1 - nu)*grad(x[k]) - nu*m[k+1]"
[initial]
"m[0]" = "0"
"""
    spec = write(tmp_path, text)
    assert "def build_tied" in generate(spec, "fc").source
    conv = generate(spec, "conv").source
    assert 'FORM = "streams"' in conv
    assert '"z_m": (1, "zero")' in conv  # m restarts at 0 in every stage, as m₀ = 0


def test_multi_state_spec_with_a_history_sum_has_no_conv_form(tmp_path: Path) -> None:
    text = """
name = "two_sums"
states = ["x", "m"]
[update]
"m[k+1]" = "m[k] + grad(x[k])"
"x[k+1]" = "x[k] - sum(grad(x[j]), j, 0, k)"
[initial]
"m[0]" = "0"
"""
    spec = write(tmp_path, text)
    assert "def build_tied" in generate(spec, "fc").source
    with pytest.raises(UserError, match=r"all-history term .*applies T over every earlier state"):
        generate(spec, "conv")


# ------------------------------------------------------------- the whole spec checked before writing

HOSTILE_TEXTS = [
    'Quote """ inside',
    'ends with a quote"',
    "back\\slash \\N{x} \\u12 \\",
    "'''single''' and {{ jinja }} {% raw %} %s",
    "ünïcødé — Φ(Wz) ∇f ½",
    '\\"""\\',
]


def _import(tmp_path: Path, source: str, stem: str) -> object:
    path = tmp_path / f"{stem}.py"
    path.write_text(source, encoding="utf-8")
    return load_python_file(str(path))


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_any_title_reference_or_path_gives_a_module_that_imports_and_runs(tmp_path, text):
    """Titles, references and the spec's own path go into docstrings through one escape (the
    templates' `doc` filter): the module parses, its docstring holds the text unchanged, it runs."""
    import ast
    import json

    folder = tmp_path / ('we"""ird\\dir ' + str(HOSTILE_TEXTS.index(text)))
    folder.mkdir()
    toml = TWO_MOMENTA.replace(
        'title = "Heavy ball with a second momentum"',
        f"title = {json.dumps(text)}\nreference = {json.dumps(text[::-1])}",
    )
    spec = write(folder, toml)
    for form in ("fc", "conv"):
        source = generate(spec, form).source
        docstring = ast.get_docstring(ast.parse(source), clean=False) or ""
        assert docstring.startswith(text) and f"({text[::-1]})" in docstring and spec in docstring
        module = _import(tmp_path, source, f"hostile_{form}")
        if form == "fc":
            w = torch.eye(3, dtype=torch.float64) * 0.5
            out = module.build_tied(w, "tanh", 6)(torch.ones(2, 3, dtype=torch.float64))
            assert torch.isfinite(out).all()
        else:
            model = module.create_model(num_classes=10, depth=8)
            assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_random_texts_always_render_a_valid_module():
    """Seeded random titles from an alphabet of quotes, backslashes, braces and controls."""
    import ast
    import dataclasses
    import random

    from derive.codegen.fc import render_fc
    from derive.codegen.generate import format_source

    base = recurrence_of(get_algorithm("heavyball"))
    alphabet = ['"', "'", "\\", "{", "}", "%", "\n", "\t", "\x00", "\x7f", "\u2028", "a", " ", "N"]
    rng = random.Random(11)
    for _ in range(20):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        algorithm = dataclasses.replace(base.algorithm, title=text, reference=text, equation=text)
        source = format_source(render_fc(dataclasses.replace(base, algorithm=algorithm)))
        docstring = ast.get_docstring(ast.parse(source), clean=False) or ""
        assert docstring.startswith(text.lstrip(" ")), repr(text)  # black drops leading spaces


SPEC_HEAD = 'name = "bad"\n[initial]\n"x[-1]" = "x[0]"\n'
BAD_SPECS = {
    "nested constant powers": (
        '[update]\n"x[k+1]" = "x[k] - grad(x[k]) + ((((9**16)**16)**16)**16)*x[k]"',
        "number out of range",
    ),
    "a power of a power of k": (
        '[schedules]\nmom = "((k + 1)**16)**16"\n[update]\n"x[k+1]" = "x[k] - mom[k]*grad(x[k])"',
        "exponent too large",
    ),
    "huge look-back": (
        '[update]\n"x[k+1]" = "x[k] - grad(x[k]) + 0.1*x[k-1000000000]"',
        "1,000,000,000 steps away",
    ),
    "a state with no initial value": (
        '[update]\n"x[k+1]" = "x[k] - grad(x[k]) + 0.1*(x[k-1] - x[k-2])"',
        "reads x[-2], which has no value",
    ),
    "a second state with no start": (
        'states = ["x", "m"]\n[update]\n"m[k+1]" = "0.9*m[k] + grad(x[k])"\n'
        '"x[k+1]" = "x[k] - m[k+1]"',
        "reads m[0], which has no value",
    ),
    "a schedule dividing by zero at k = 3": (
        '[schedules]\nmom = "1/(k - 3)"\n[update]\n"x[k+1]" = "x[k] - grad(x[k]) + mom[k]*(x[k] - x[k-1])"',
        "schedule mom fails at k = 3: division by zero",
    ),
    "a schedule dividing by zero at k = 999": (
        '[schedules]\nmom = "1/(k - 999)"\n[update]\n"x[k+1]" = "x[k] - mom[k]*grad(x[k])"',
        "schedule mom fails at k = 999",
    ),
    "a schedule that overflows": (
        '[schedules]\ngrow = "3**k"\n[update]\n"x[k+1]" = "x[k] - grow[k]*grad(x[k])/1000"',
        "not a finite number",
    ),
    "a log of 0 at k = 0": (
        '[schedules]\ns = "log(k)"\n[update]\n"x[k+1]" = "x[k] - s[k]*grad(x[k])"',
        "schedule s fails at k = 0",
    ),
    "a coefficient dividing by zero": (
        '[update]\n"x[k+1]" = "x[k] - grad(x[k])/(k - 5)"',
        "at k = 5 fails: division by zero",
    ),
    "a constant division by zero": (
        '[update]\n"x[k+1]" = "x[k] - grad(x[k])/0"',
        "division by zero",
    ),
    "a complex constant": (
        '[update]\n"x[k+1]" = "x[k] - sqrt(-2)*grad(x[k])"',
        "not a real number",
    ),
    "a two-line title": ('title = "one\\ntwo"\n[update]\n"x[k+1]" = "x[k]"', "one line of text"),
    "a long title": (f'title = "{"t" * 201}"\n[update]\n"x[k+1]" = "x[k]"', "at most 200"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
@pytest.mark.parametrize("form", ["fc", "conv"])
def test_specs_that_would_fail_at_run_time_are_refused_before_writing(tmp_path, capsys, case, form):
    body, message = BAD_SPECS[case]
    head = SPEC_HEAD if not body.startswith(("states", "title")) else 'name = "bad"\n'
    text = head + body if "[initial]" not in body else body
    if body.startswith(("states", "title")):
        text = head + body.replace("[update]", '[initial]\n"x[-1]" = "x[0]"\n[update]', 1)
    spec = write(tmp_path, text)
    out = tmp_path / "out"
    assert main(["network", "--algo", spec, "--form", form, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_a_schedule_that_is_fine_everywhere_is_accepted_and_runs(tmp_path):
    """The checks refuse only what fails: 1/(k + 1) and a look-back of 3 with its initial values."""
    text = (
        'name = "fine"\n[schedules]\nstep = "1/(k + 1)"\n[update]\n'
        '"x[k+1]" = "x[k] - step[k]*grad(x[k]) + 0.1*(x[k-2] - x[k-3])"\n'
        '[initial]\n"x[-1]" = "x[0]"\n"x[-2]" = "x[0]"\n"x[-3]" = "x[-1]"\n'
    )
    spec = write(tmp_path, text)
    module = _import(tmp_path, generate(spec, "fc").source, "fine_fc")
    w = torch.eye(4, dtype=torch.float64) * 0.3
    assert torch.isfinite(
        module.build_tied(w, "sigmoid", 50)(torch.ones(3, 4, dtype=torch.float64))
    ).all()


def test_the_run_time_checks_pass_for_every_built_in():
    """No false alarm: the built-ins' recurrences pass the same checks (at depth 60 here)."""
    from derive.algorithms import list_algorithms
    from derive.algorithms.validate import check_recurrence

    for name in list_algorithms():
        check_recurrence(recurrence_of(get_algorithm(name)), depth=60)
