"""`derive activation --expr --time-limit`: one wall-clock budget for the whole command; analyses it
stops are reported as undecided (time limit), never a hang; bad values are one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sympy as sp

from derive import limits
from derive.cli import main
from derive.symbolic import formats, pieces, pipeline, proof_numeric, proof_symbolic, timelimit
from derive.symbolic.energy import derive_energy, numeric_psi
from derive.symbolic.symbols import x
from derive.symbolic.timelimit import TIME_LIMIT, budget, budget_spent, time_limit
from derive.symbolic.user_input import parse_user_phi

ROOT = Path(__file__).resolve().parents[1]

# 13 pieces of fast oscillations, one without a closed-form integral: Ψ is numeric (quadrature of
# an oscillating integrand across every branch point), and the full numeric proof takes many
# seconds.
WAVES = [
    "sin(50*x**3)",
    "cos(40*x)",
    "sin(30*x)*cos(20*x)",
    "cos(45*x)",
    "sin(35*x)",
    "cos(25*x)*sin(15*x)",
    "sin(55*x)",
    "cos(60*x)",
    "sin(42*x)",
    "cos(33*x)",
    "sin(47*x)",
    "cos(38*x)",
]
HOSTILE = (
    "Piecewise(" + ", ".join(f"({w}, x < {k - 6})" for k, w in enumerate(WAVES)) + ", (x, True))"
)


def _spin(seconds: float) -> None:
    """Busy Python code (signals are delivered between bytecodes)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


# --- the mechanism ----------------------------------------------------------------------------


def test_budget_caps_every_block_and_the_outermost_capped_block_owns_it():
    start = time.monotonic()
    with budget(0.3):
        with time_limit(None) as outer:
            with time_limit(5.0) as inner:
                _spin(5.0)
        assert budget_spent()
    assert outer.expired and not inner.expired
    assert time.monotonic() - start < 2.0
    assert not budget_spent()  # outside the budget again


def test_a_shorter_limit_inside_a_budget_still_owns_its_own_deadline():
    with budget(5.0):
        with time_limit(None) as outer:
            with time_limit(0.1) as inner:
                _spin(1.0)
    assert inner.expired and not outer.expired


def test_time_limit_none_outside_a_budget_has_no_limit():
    with time_limit(None) as limit:
        _spin(0.3)
    assert not limit.expired and limit.deadline == float("inf")


def test_nested_budgets_keep_the_earlier_deadline():
    with budget(0.2):
        with budget(60.0):
            time.sleep(0.3)
            assert budget_spent()


# --- each analysis --------------------------------------------------------------------------


def test_symbolic_steps_past_the_budget_are_undecided_by_time_limit():
    phi, psi = sp.tanh(x), sp.log(sp.cosh(x))
    assert proof_symbolic.prove(phi, psi).proved  # the claim itself is provable
    with budget(0):
        proof = proof_symbolic.prove(phi, psi)
    assert proof.steps and all(s.ok is None and s.detail == TIME_LIMIT for s in proof.steps)
    assert formats.symbolic_summary(proof).startswith(TIME_LIMIT)


def test_energy_past_the_budget_is_the_numeric_integral():
    phi = x * sp.exp(-(x**2))
    with budget(0):
        energy = derive_energy(phi, pieces.split(phi), limit=5.0)
    assert not energy.closed_form and energy.timed_out
    assert energy.psi == numeric_psi(phi)


def _hostile() -> tuple[sp.Expr, sp.Expr, pieces.Branching]:
    phi = parse_user_phi(HOSTILE)
    return phi, numeric_psi(phi), pieces.split(phi)


def test_numeric_proof_stops_when_the_budget_is_spent():
    phi, psi, branching = _hostile()
    start = time.monotonic()
    with budget(1.0):
        proof = proof_numeric.check(phi, psi, branching, [])
    elapsed = time.monotonic() - start
    assert proof.timed_out and not proof.ok
    assert elapsed < 10.0


def test_numeric_proof_checks_the_deadline_between_points_without_alarms():
    """In a worker thread SIGALRM cannot interrupt anything: the loops' own checks end it."""
    phi, psi, branching = _hostile()
    found: dict[str, object] = {}

    def work() -> None:
        start = time.monotonic()
        with budget(1.0):
            found["proof"] = proof_numeric.check(phi, psi, branching, [])
        found["elapsed"] = time.monotonic() - start

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    proof = found["proof"]
    assert proof.timed_out and not proof.ok  # type: ignore[attr-defined]
    assert found["elapsed"] < 20.0  # type: ignore[operator]


def test_a_spent_budget_reports_every_analysis_undecided():
    record = pipeline.derive_expression("x*exp(-x**2)", "bump", seconds=0)
    assert record.timed_out and not record.verified
    with budget(0):  # the smoothness analysis of the text output counts too, as in the command
        text = formats.render([record], "text")
    assert "the time limit ended the search for a closed form" in text
    assert f"symbolic proof: {TIME_LIMIT}" in text
    assert f"numeric proof: {TIME_LIMIT}" in text
    assert f"Φ′ range {TIME_LIMIT}" in text
    assert "SymPy cannot decide" not in text


def test_the_default_budget_does_not_change_a_normal_expression():
    record = pipeline.derive_expression("x*exp(-x**2)", "bump")
    assert record.verified and not record.timed_out
    assert record.energy.closed_form and record.symbolic.proved


# --- the command ----------------------------------------------------------------------------


def test_hostile_piecewise_with_a_tiny_budget_ends_and_reports_undecided():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "derive", "activation", "--expr", HOSTILE]
    result = subprocess.run(
        [*command, "--time-limit", "1"],  # the smallest budget accepted: ends soonest
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert f"numeric proof: {TIME_LIMIT}" in result.stdout
    assert "verified: NO" in result.stdout
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "--time-limit" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "0.5", "1e9", "3601", "abc", "nan", "inf"])
def test_bad_time_limit_is_one_line_exit_2(capsys, value):
    code = main(["activation", "--expr", "x", "--time-limit", value])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("derive: error: ") and err.count("\n") == 1
    assert "--time-limit" in err and "a number of seconds" in err


def test_time_limit_is_only_for_expressions(capsys):
    code = main(["activation", "swish", "--time-limit", "10"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--time-limit applies to --expr" in err


def test_time_limit_and_its_bound_are_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["activation", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--time-limit SECONDS" in out
    assert " ".join(limits.ACTIVATION_SECONDS.help().split()) in out
    assert f"default: {limits.ACTIVATION_SECONDS_DEFAULT:g}" in out


def test_time_limit_within_bounds_is_accepted(capsys):
    code = main(["activation", "--expr", "x", "--time-limit", "3600", "--format", "json"])
    out, _ = capsys.readouterr()
    assert code == 0 and '"verified": true' in out
    assert not timelimit.budget_spent()
