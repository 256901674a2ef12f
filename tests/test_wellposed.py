"""The well-posed simulation: exact targets, the optimizer's own error, run files, the report.

The references here are numpy iterations written from the equations (the fixed point
z = Φ(W*z) + z₀, gradient descent and heavy ball on F in x-space), never derive's code.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from derive.cli import main
from derive.experiments.stats import sign_flip_p
from derive.experiments.wellposed.report import MARKDOWN, build_report
from derive.experiments.wellposed.study import RunKey, Setting, run_one, task
from derive.experiments.wellposed.teacher import make_teacher, solve_targets

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "results" / "simulation_wellposed"


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


@pytest.mark.parametrize("kappa", [3.0, 30.0])
def test_targets_are_the_fixed_point_and_kappa_bounds_the_hessian(kappa: float) -> None:
    teacher = make_teacher(6, kappa, np.random.default_rng(1))
    inputs = np.random.default_rng(2).normal(-0.5, 0.5, size=(20, 6))
    z = inputs.copy()
    for _ in range(4000):  # a contraction with factor ≤ 1 − 1/κ: plain iteration converges
        z = sigmoid(z @ teacher.weight) + inputs
    np.testing.assert_allclose(solve_targets(teacher, inputs), z, atol=1e-11)
    np.testing.assert_allclose(teacher.root @ teacher.root, teacher.weight, atol=1e-12)
    for x in np.random.default_rng(3).normal(0, 2, size=(30, 6)):
        s = sigmoid(teacher.root @ x)
        hessian = np.eye(6) - teacher.root @ np.diag(s * (1 - s)) @ teacher.root
        eig = np.linalg.eigvalsh(hessian)
        assert eig.min() >= 1 / kappa - 1e-12 and eig.max() <= 1 + 1e-12


def numpy_optimizer(algo: str, u_mat: np.ndarray, z0: np.ndarray, depth: int) -> np.ndarray:
    """z_depth of GD or heavy ball (β = 0.3) on F(·; z₀), run in x-space."""
    b = z0 @ u_mat
    prev = x = z0 @ u_mat
    for _ in range(depth):
        step = x - (x - sigmoid(x @ u_mat) @ u_mat - b)
        prev, x = x, step + (0.3 * (x - prev) if algo == "heavyball" else 0)
    return np.linalg.solve(u_mat, x.T).T


@pytest.mark.parametrize("algo", ["gd", "heavyball"])
@pytest.mark.parametrize("depth", [1, 4, 9])
def test_the_untrained_teacher_network_has_the_optimizers_error(algo: str, depth: int) -> None:
    setting = Setting(dim=5, train=8, test=16, steps=2)
    result = run_one(RunKey(10.0, algo, depth, "teacher", 3), setting)
    teacher, _, test = task(setting, 10.0, 3)
    z_d = numpy_optimizer(algo, teacher.root, test.inputs, depth)
    expected = np.mean((z_d - test.targets) ** 2) / test.targets.var(axis=0, ddof=1).mean()
    assert result.optimizer_error == pytest.approx(expected, rel=1e-9)
    assert result.initial_error == pytest.approx(expected, rel=1e-9)
    assert result.test_error != result.initial_error  # the weights did move


def test_sign_flip_p_exact_values() -> None:
    assert sign_flip_p([1, 2, 3, 4, 5, 6]) == pytest.approx(2 / 64)
    assert sign_flip_p([3, -1, 2]) == pytest.approx(4 / 8)  # |±3 ± 1 ± 2| ≥ 4: 6, 4, 4, 6
    assert sign_flip_p([1, -1]) == pytest.approx(1.0)
    assert sign_flip_p([]) is None


def test_committed_report_is_rebuilt_exactly_from_its_run_files() -> None:
    if not (COMMITTED / MARKDOWN).exists():
        pytest.skip("no committed well-posed study")
    assert build_report(COMMITTED) == (COMMITTED / MARKDOWN).read_text(encoding="utf-8")


def rows_without_time(path: Path) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    return [row[:-1] for row in rows]  # the last column is the wall time


def test_quick_study_runs_resumes_and_reports(tmp_path: Path, capsys) -> None:
    out = tmp_path / "study"
    assert main(["-q", "simulate", "--task", "wellposed", "--quick", "--out", str(out)]) == 0
    full = rows_without_time(out / "runs.csv")
    assert len(full) == 1 + 16 and (out / MARKDOWN).is_file()
    assert (out / "simulation_wellposed.png").stat().st_size > 1000
    lines = (out / "runs.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (out / "runs.csv").write_text("".join(lines[:-5]), encoding="utf-8")  # as if stopped
    argv = ["-q", "simulate", "--task", "wellposed", "--quick", "--out", str(out)]
    assert main([*argv, "--resume"]) == 0
    assert rows_without_time(out / "runs.csv") == full  # every run is seeded on its own
    capsys.readouterr()
    assert main(argv) == 2  # a folder that holds a study needs --resume or --force
    assert "--resume or --force" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--epochs", "5"], "drop --epochs"),
        (["--task", "nope"], "invalid choice"),
    ],
)
def test_bad_task_options_exit_2_in_one_line(tmp_path: Path, capsys, extra, message) -> None:
    argv = ["simulate", "--task", "wellposed", "--quick", "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()
