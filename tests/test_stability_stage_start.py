"""The stage_start="zero" reading: refused, in one line, for a recurrence that looks back two states."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from train_fixtures import write_cifar10

from derive.cli import main

SPEC = """
name = "{name}"
title = "Heavy ball with a look-back of {lags} states"
states = ["x"]
[coefficients]
gamma = 0.1
[update]
"x[k+1]" = "x[k] - grad(x[k]) + 0.5*(x[k] - x[k-1]){extra}"
[initial]
"x[-1]" = "x[0]"
{initial}
"""


def _network(tmp_path: Path, name: str, two_back: bool) -> Path:
    spec = tmp_path / f"{name}.toml"
    extra = " + gamma*(x[k-1] - x[k-2])" if two_back else ""
    initial = '"x[-2]" = "x[0]"' if two_back else ""
    spec.write_text(SPEC.format(name=name, lags=2 if two_back else 1, extra=extra, initial=initial))
    assert main(["-q", "network", "--algo", str(spec), "--out", str(tmp_path)]) == 0
    return tmp_path / f"{name}_conv.py"


def _create_model(path: Path):
    loaded = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module.create_model


def test_zero_stage_start_is_refused_for_a_two_state_look_back(tmp_path, capsys):
    write_cifar10(tmp_path / "data")
    network = _network(tmp_path, "lag_two", two_back=True)
    out = tmp_path / "run"
    argv = ["train", str(network), "--data-dir", str(tmp_path / "data"), "--out", str(out)]
    assert main([*argv, "--epochs", "1", "--model-arg", "stage_start=zero"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "stage_start='zero'" in err and "at most one state" in err
    assert not out.exists()  # nothing half-written
    # the same network builds with the derived restart, and a one-state look-back takes "zero"
    assert _create_model(network)(stage_start="input") is not None
    one_back = _create_model(_network(tmp_path, "lag_one", two_back=False))
    assert one_back(stage_start="zero") is not None
