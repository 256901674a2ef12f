"""`derive train --resume` from a checkpoint with the right format tag but a damaged field.

Each variant loads a real checkpoint of a one-epoch tiny run, alters one field, saves it, and resumes:
one line naming the checkpoint and the field, exit status 2, and the run folder exactly as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from train_fixtures import single_thread, write_cifar10, write_model  # noqa: F401

from derive.cli import main
from derive.errors import UserError
from derive.train.checkpoint import load_checkpoint

State = dict[str, object]


def _argv(root: Path, run: Path, *extra: str) -> list[str]:
    return [
        "train",
        str(root / "tiny.py"),
        "--data-dir",
        str(root / "data"),
        "--out",
        str(run),
        "--batch-size",
        "32",
        "--progress-interval",
        "0",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished one-epoch run (with the step log) of the tiny model on tiny data."""
    root = tmp_path_factory.mktemp("trained")
    write_cifar10(root / "data", per_file=40, n_test=60)
    write_model(root / "tiny.py")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_argv(root, root / "run", "--epochs", "1", "--log-steps")) == 0
    finally:
        torch.set_num_threads(before)
    return root


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _damage(trained: Path, tmp_path: Path, change: Callable[[State], None]) -> Path:
    """A copy of the trained run whose checkpoint has had `change` applied to it."""
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    change(state)
    torch.save(state, run / "checkpoint.pt")
    return run


def _set(field: str, value: object) -> Callable[[State], None]:
    return lambda state: state.__setitem__(field, value)


def _set_in(field: str, key: object, value: object) -> Callable[[State], None]:
    return lambda state: state[field].__setitem__(key, value)  # type: ignore[index]


def _del_row_key(key: str) -> Callable[[State], None]:
    return lambda state: state["history"][0].pop(key)  # type: ignore[index]


def _set_group(key: str, value: object) -> Callable[[State], None]:
    return lambda state: state["optimizer"]["param_groups"][0].__setitem__(key, value)  # type: ignore[index]


def _set_buffer(value: object) -> Callable[[State], None]:
    return lambda state: state["optimizer"]["state"][0].__setitem__("momentum_buffer", value)  # type: ignore[index]


DAMAGE = {
    "recipe-list": (_set("recipe", [1, 2]), "recipe"),
    "recipe-epochs-string": (_set_in("recipe", "epochs", "three"), "recipe['epochs']"),
    "recipe-value-tensor": (_set_in("recipe", "lr", torch.ones(3)), "recipe['lr']"),
    "history-string": (_set("history", "epoch 1"), "history"),
    "history-row-short": (_del_row_key("test_acc"), "history[0]"),
    "history-row-string": (_set("history", ["row"]), "history[0]"),
    "history-value-string": (
        lambda s: s["history"][0].__setitem__("seconds", "0.1"),  # type: ignore[index]
        "history[0]['seconds']",
    ),
    "history-epoch-wrong": (
        lambda s: s["history"][0].__setitem__("epoch", 7),  # type: ignore[index]
        "history[0]['epoch']",
    ),
    "epoch-string": (_set("epoch", "1"), "epoch"),
    "epoch-not-history-length": (_set("epoch", 5), "epoch"),
    "rng-string": (_set("rng", "seed"), "rng"),
    "rng-torch-missing": (_set("rng", {}), "rng['torch']"),
    "rng-torch-float": (_set_in("rng", "torch", torch.zeros(5056)), "rng['torch']"),
    "rng-torch-short": (
        _set_in("rng", "torch", torch.zeros(10, dtype=torch.uint8)),
        "rng['torch']",
    ),
    "rng-cuda-string": (_set_in("rng", "cuda", "x"), "rng['cuda']"),
    "model-list": (_set("model", [1]), "model"),
    "model-id-tensor": (_set("model_id", torch.ones(2)), "model_id"),
    "optimizer-string": (_set("optimizer", "sgd"), "optimizer"),
    "optimizer-lr-string": (_set_group("lr", "0.1"), "optimizer['param_groups'][0]['lr']"),
    "optimizer-params-string": (_set_group("params", "all"), "optimizer['param_groups'][0]"),
    "optimizer-buffer-string": (_set_buffer("fast"), "optimizer['state'][0]['momentum_buffer']"),
    "optimizer-buffer-shape": (
        _set_buffer(torch.zeros(3)),
        "optimizer['state'][0]['momentum_buffer']",
    ),
    "scheduler-list": (_set("scheduler", [0]), "scheduler"),
    "scheduler-last-epoch-string": (_set_in("scheduler", "last_epoch", "1"), "scheduler"),
    "scheduler-base-lrs-string": (_set_in("scheduler", "base_lrs", "0.1"), "scheduler"),
    "scheduler-milestones-list": (_set_in("scheduler", "milestones", [2]), "scheduler"),
    "warmup-step-string": (_set_in("warmup", "step", "7"), "warmup['step']"),
    "warmup-recent-ragged": (_set_in("warmup", "recent", [[1]]), "warmup['recent']"),
    "steps-1d": (_set("steps", torch.zeros(6, dtype=torch.float64)), "steps"),
    "steps-int": (_set("steps", torch.zeros((7, 6), dtype=torch.int64)), "steps"),
    "sessions-dict": (_set("sessions", {"a": 1}), "sessions"),
    "sessions-row-string": (_set("sessions", ["x"]), "sessions[0]"),
    "started-at-int": (_set("started_at", 5), "started_at"),
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_resume_from_a_damaged_field_is_one_line_exit_2_and_changes_nothing(
    trained, tmp_path, capsys, name
):
    change, field = DAMAGE[name]
    run = _damage(trained, tmp_path, change)
    before = _files(run)
    capsys.readouterr()
    assert main(_argv(trained, run, "--epochs", "2", "--resume")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(run / "checkpoint.pt") in err and field in err, err
    assert _files(run) == before


def test_the_undamaged_checkpoint_resumes(trained, tmp_path):
    """The control: the same copy, unaltered, resumes to two epochs."""
    run = _damage(trained, tmp_path, lambda state: None)
    assert main(_argv(trained, run, "--epochs", "2", "--resume")) == 0
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2


def test_a_checkpoint_without_the_warmup_and_step_log_of_older_versions_still_loads(
    trained, tmp_path
):
    run = _damage(trained, tmp_path, lambda state: [state.pop("warmup"), state.pop("steps")])
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1


def test_load_checkpoint_names_the_field_for_other_callers_too(trained, tmp_path):
    run = _damage(trained, tmp_path, _set("history", None))
    with pytest.raises(UserError, match=r"checkpoint.pt.*history"):
        load_checkpoint(run / "checkpoint.pt")
