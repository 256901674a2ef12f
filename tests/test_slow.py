"""The long checks, run by `make test-slow` (not by `make test`): each takes a minute or more here.

- every built-in recurrence passes the run-time checks at the full horizon user specs are held to
  (depth 1,000; `make test` checks depth 60);
- `derive simulate --quick`, the documented one-minute run, end to end: every run completes, the
  table holds ours beside the printed numbers, and the whole table is reproduced by a second run.
"""

from __future__ import annotations

import csv
import math

import pytest
import torch

from derive.algorithms import get_algorithm, list_algorithms, recurrence_of
from derive.algorithms.validate import check_recurrence
from derive.cli import main
from derive.limits import MAX_DEPTH

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list_algorithms())
def test_built_in_recurrences_pass_the_checks_at_full_depth(name):
    check_recurrence(recurrence_of(get_algorithm(name)), depth=MAX_DEPTH)


def test_quick_simulation_end_to_end(tmp_path, capsys):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "quick"
        assert main(["-q", "simulate", "--quick", "--device", "cpu", "--out", str(out)]) == 0
        assert capsys.readouterr().out.strip() == f"{out}/simulation.md"
        rows = list(csv.DictReader(open(out / "final.csv", newline="")))
        assert len(rows) == 10 and all(r["status"] == "completed" for r in rows)
        assert all(math.isfinite(float(r["final_train_mse"])) for r in rows)
        table = (out / "simulation.md").read_text()
        assert "| 10 |" in table and "| 20 |" in table and "1.07576" in table  # printed ADMM, d 10
        again = tmp_path / "again"
        assert main(["-q", "simulate", "--quick", "--device", "cpu", "--out", str(again)]) == 0
        first = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
        second = [
            {k: v for k, v in r.items() if k != "seconds"}
            for r in csv.DictReader(open(again / "final.csv", newline=""))
        ]
        assert first == second  # same command, same numbers
    finally:
        torch.set_num_threads(before)
