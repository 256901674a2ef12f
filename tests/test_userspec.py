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
        ("grad(grad(x[k]))", "cannot derive"),
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


def test_multi_state_spec_has_fc_but_no_conv_form(tmp_path: Path) -> None:
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
    with pytest.raises(UserError, match="one stream"):
        generate(spec, "conv")
