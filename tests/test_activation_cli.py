"""`derive activation`: outputs, the JSON contract, and every kind of bad input (exit 2, one line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mpmath as mp
import pytest
import sympy as sp
from symbolic_cache import cached_pipeline  # noqa: F401  (autouse: one derivation per activation)

from derive.cli import main

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"name", "phi", "psi", "energy", "gradient", "verified", "numeric_max_error", "paper"}
X = sp.Symbol("x")


def run(capsys, *argv):
    code = main(["activation", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "give an activation NAME"),
        (["sigmod"], "did you mean 'sigmoid'"),
        (["nonsense_activation"], "unknown activation"),
        (["relu", "--alpha", "0.2"], "--alpha does not apply to relu"),
        (["elu", "--alpha", "0.2"], "--alpha does not apply to elu"),
        (["leaky_relu", "--alpha", "2"], "out of range"),
        (["leaky_relu", "--alpha", "-0.1"], "out of range"),
        (["leaky_relu", "--alpha", "nan"], "not a finite number"),
        (["leaky_relu", "--alpha", "inf"], "not a finite number"),
        (["leaky_relu", "--alpha", "abc"], "not a number"),
        (["elu", "--a", "0"], "out of range"),
        (["elu", "--a", "1e999"], "out of range"),
        (["relu", "--format", "xml"], "invalid choice"),
        (["relu", "--all"], "cannot be combined"),
        (["--expr", "x", "relu"], "cannot be combined"),
        (["--expr", "x", "--all"], "cannot be combined"),
        (["--name", "foo"], "--name only names an --expr"),
        (["--expr", "x", "--name", "not an id"], "not an identifier"),
        (["--expr", "x", "--name", "1x"], "not an identifier"),
        (["--expr", "x", "--alpha", "0.1"], "not to --expr"),
        (["--expr", "x +* 2"], "malformed"),
        (["--expr", "x + y"], "function of x alone"),
        (["--expr", "__import__('os').system('echo hi')"], "--expr"),
        (["--expr", "x.__class__"], "attribute"),
        (["--expr", "[x for x in (1,)]"], "comprehensions"),
        (["--expr", "9**9**9**9"], "exponent"),
        (["--expr", "log(x)"], "not real"),
        (["--expr", "1/x"], "not continuous"),
        (["--expr", "exp(exp(exp(x)))"], "too large"),
        (["relu", "--sigma", "-1"], "--sigma"),
        (["relu", "--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, fragment):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("derive: error: ") and err.count("\n") == 1
    assert fragment in err


def test_bad_input_writes_nothing(tmp_path, capsys):
    target = tmp_path / "out.json"
    for argv in (["sigmod"], ["--expr", "x + y"], ["leaky_relu", "--alpha", "7"]):
        code, _, _ = run(capsys, *argv, "--format", "json", "--out", str(target))
        assert code == 2
    assert list(tmp_path.iterdir()) == []
    code, _, err = run(capsys, "relu", "--out", str(tmp_path / "missing" / "out.txt"))
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "relu", "--out", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_a_real_subprocess_exits_2_with_one_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "derive", "activation", "--expr", "open('/etc/passwd')"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("derive: error: ")
    assert "Traceback" not in result.stderr


def test_json_record_contract(capsys):
    code, out, _ = run(capsys, "sigmoid", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == KEYS
    assert data["name"] == "sigmoid" and data["verified"] is True
    assert isinstance(data["numeric_max_error"], float)
    assert sp.sympify(data["phi"]) == 1 / (1 + sp.exp(-X))
    psi = sp.sympify(data["psi"])
    assert sp.simplify(sp.diff(psi, X) - 1 / (1 + sp.exp(-X))) == 0 and psi.subs(X, 0) == 0
    assert [p["source"] for p in data["paper"]] == [
        "ACML 2018, Table 1",
        "SCIS 2023, appendix Table A1",
    ]
    assert [p["verified"] for p in data["paper"]] == [False, True]
    assert all(set(p) == {"source", "printed", "verified", "note"} for p in data["paper"])


def test_activations_not_in_the_papers_have_an_empty_paper_list(capsys):
    code, out, _ = run(capsys, "hardtanh", "--format", "json")
    assert code == 0 and json.loads(out)["paper"] == []


def test_alpha_value_is_exact(capsys):
    code, out, _ = run(capsys, "leaky_relu", "--alpha", "0.2", "--format", "json")
    assert code == 0
    psi = sp.sympify(json.loads(out)["psi"])
    assert psi.subs(X, -1) == sp.Rational(1, 10)


def test_user_expression_closed_form(capsys):
    code, out, _ = run(capsys, "--expr", "x*exp(-x**2)", "--name", "wiggle", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["name"] == "wiggle" and data["verified"] is True and data["paper"] == []
    psi = sp.lambdify(X, sp.sympify(data["psi"]), "mpmath")
    with mp.workdps(30):
        for v in (-2.5, -0.3, 1.1, 3.0):
            assert abs(psi(mp.mpf(v)) - (1 - mp.exp(-(mp.mpf(v) ** 2))) / 2) < 1e-25


def test_user_expression_without_closed_form_is_numeric(capsys):
    # both outputs render one derivation (same expression and name; --name: see the test above)
    code, out, _ = run(capsys, "--expr", "tanh(x**2)")
    assert code == 0
    assert "numeric (no closed form found)" in out and "verified: yes" in out
    code, out, _ = run(capsys, "--expr", "tanh(x**2)", "--format", "json")
    data = json.loads(out)
    assert data["name"] == "custom"
    assert data["psi"] == "Integral(tanh(t**2), (t, 0, x))"
    integral = sp.sympify(data["psi"])
    assert (
        abs(
            float(integral.subs(X, 1.5).evalf(20))
            - float(mp.quad(lambda t: mp.tanh(t**2), [0, 1.5]))
        )
        < 1e-12
    )


def test_discontinuous_user_phi_is_not_verified(capsys, caplog):
    code, out, _ = run(capsys, "--expr", "sign(x)", "--format", "json")
    assert code == 0 and json.loads(out)["verified"] is False
    assert "NOT verified" in caplog.text


@pytest.mark.parametrize(
    ("fmt", "markers"),
    [
        (
            "text",
            [
                "Φ(x)  = x/(1 + exp(−x))",
                "Ψ(x)  = ",
                "symbolic proof: passed",
                "verified: yes",
                "smoothness: ",
                "SCIS 2023",
            ],
        ),
        (
            "latex",
            [r"\begin{align*}", r"\Psi(x) &=", r"\operatorname{Li}_2", r"\nabla f(\mathbf{x})"],
        ),
        (
            "markdown",
            [
                "## swish",
                "| Ψ(x) |",
                "| verified | yes |",
                "| source | printed Ψ(u) | verdict | note |",
            ],
        ),
    ],
)
def test_formats(capsys, fmt, markers):
    code, out, _ = run(capsys, "silu", "--format", fmt)
    assert code == 0
    for marker in markers:
        assert marker in out, marker


def test_sigma_option_changes_the_smoothness_line(capsys):
    code, out, _ = run(capsys, "tanh", "--sigma", "0.5")
    assert code == 0 and "σ = ‖U‖₂ = 0.5 (given)" in out and "μ = 0.75" in out


def test_out_writes_the_same_text_atomically(tmp_path, capsys):
    target = tmp_path / "relu.json"
    code, out, _ = run(capsys, "relu", "--format", "json", "--out", str(target))
    assert code == 0 and out == ""
    _, expected, _ = run(capsys, "relu", "--format", "json")
    assert target.read_text(encoding="utf-8") == expected
    assert [p.name for p in tmp_path.iterdir()] == ["relu.json"]


def test_list_and_help(capsys):
    code, out, _ = run(capsys, "--list")
    assert code == 0 and "swish" in out and "(alias silu)" in out and "--alpha" in out
    with pytest.raises(SystemExit) as info:
        main(["activation", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--all",
        "--expr",
        "--name",
        "--alpha",
        "--a ",
        "--format",
        "--out",
        "--list",
        "--sigma",
        "examples:",
    ):
        assert option in out


def test_all_as_json_list(capsys):
    code, out, _ = run(capsys, "--all", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [d["name"] for d in data][:8] == [
        "sigmoid",
        "tanh",
        "softplus",
        "softsign",
        "relu",
        "leaky_relu",
        "elu",
        "swish",
    ]
    assert {"gelu", "mish", "hardtanh"} <= {d["name"] for d in data}
    assert all(set(d) == KEYS and d["verified"] for d in data)
