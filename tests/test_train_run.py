"""run_training end to end on tiny data and a tiny model: files, numbers, schedule, resume, safety."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from train_fixtures import (
    tiny_flops,
    tiny_parameters,
    write_cifar10,
    write_cifar100,
    write_model,
)  # noqa: F401

from derive.errors import UserError
from derive.models.registry import load_python_file
from derive.train.checkpoint import load_checkpoint
from derive.train.config import TrainConfig, config_fields
from derive.train.loop import TrainingDiverged, build_model, run_training
from derive.train.runfiles import METRICS_HEADER, read_metrics


class Setup:
    """Tiny CIFAR-10 data (200 train / 60 test) and tiny model files under `root`."""

    def __init__(self, root) -> None:
        self.root = root
        self.written = write_cifar10(root / "data", per_file=40, n_test=60)
        self.models = {h: write_model(root / f"tiny_{h}.py", h) for h in ("plain", "crash", "nan")}

    def config(self, out: str = "run", hook: str = "plain", **options: object) -> TrainConfig:
        """A fast config (3 epochs, batch 32) writing to root/out; `options` override anything."""
        base = {"epochs": 3, "batch_size": 32, "progress_interval": 0, "eval_batch_size": 25}
        base.update(options)
        model = str(self.models[hook])
        return TrainConfig(
            model=model, data_dir=str(self.root / "data"), out=str(self.root / out), **base
        )


@pytest.fixture
def setup(tmp_path):
    return Setup(tmp_path)


def _rows_without_seconds(path):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_metrics(path)]


def test_run_writes_metrics_checkpoint_and_summary(setup):
    config = setup.config(epochs=4)
    summary = run_training(config)
    run = setup.root / "run"
    with open(run / "metrics.csv", newline="") as handle:
        records = list(csv.reader(handle))
    assert (
        tuple(records[0])
        == METRICS_HEADER
        == ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds")
    )
    assert [int(r[0]) for r in records[1:]] == [1, 2, 3, 4]
    assert [float(r[5]) for r in records[1:]] == [
        0.1,
        0.1,
        0.01,
        0.001,
    ]  # halves: 4*0.5=2, 4*0.75=3
    rows = read_metrics(run)
    assert all(
        0 <= r["train_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and r["seconds"] > 0 for r in rows
    )

    on_disk = json.loads((run / "summary.json").read_text())
    assert (
        on_disk["status"] == summary["status"] == "completed" and on_disk["epochs_completed"] == 4
    )
    assert on_disk["model"]["parameters"] == tiny_parameters(10)
    assert (
        on_disk["model"]["flops"] == tiny_flops(10)
        and on_disk["model"]["multiply_adds"] == tiny_flops(10) // 2
    )
    assert "multiply-add counts 2" in on_disk["model"]["flops_note"]
    assert on_disk["final_test_error_percent"] == pytest.approx(
        100 * (1 - rows[-1]["test_acc"]), abs=1e-4
    )
    assert on_disk["best_test_error_percent"] == pytest.approx(
        100 * (1 - max(r["test_acc"] for r in rows)), abs=1e-4
    )
    assert on_disk["wall_time_seconds"] == pytest.approx(sum(r["seconds"] for r in rows), abs=0.01)
    data = on_disk["dataset"]
    assert (data["name"], data["train_size"], data["test_size"], data["num_classes"]) == (
        "cifar10",
        200,
        60,
        10,
    )
    pixels = setup.written.train_rows.reshape(-1, 3, 1024) / 255.0
    np.testing.assert_allclose(data["normalization"]["mean"], pixels.mean(axis=(0, 2)), rtol=1e-9)
    np.testing.assert_allclose(data["normalization"]["std"], pixels.std(axis=(0, 2)), rtol=1e-9)
    assert set(on_disk["options"]) == set(config_fields()) and on_disk["options"]["epochs"] == 4
    assert on_disk["software"]["torch"] == torch.__version__
    commit = on_disk["software"]["git_commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)
    assert on_disk["device"]["name"].startswith("cpu") and on_disk["device"]["precision"] == "fp32"

    state = load_checkpoint(run / "checkpoint.pt")
    assert state["epoch"] == 4 and len(state["history"]) == 4
    assert {"model", "optimizer", "scheduler", "rng"} <= set(state)
    for row, kept in zip(rows, state["history"], strict=True):
        assert row["test_acc"] == pytest.approx(kept["test_acc"], abs=1e-6)


def test_reported_test_metrics_are_the_models_own(setup):
    """Recompute the final test loss/accuracy from the saved weights with a plain, independent loop."""
    run_training(setup.config(epochs=2))
    state = load_checkpoint(setup.root / "run" / "checkpoint.pt")
    model = load_python_file(str(setup.root / "tiny_plain.py")).create_model(10)
    model.load_state_dict(state["model"])
    model.eval()
    train = setup.written.train_rows.reshape(-1, 3, 1024) / 255.0
    mean, std = train.mean(axis=(0, 2)), train.std(axis=(0, 2))
    x = (setup.written.test_rows.reshape(-1, 3, 32, 32) / 255.0 - mean[:, None, None]) / std[
        :, None, None
    ]
    y = torch.from_numpy(setup.written.test_labels)
    with torch.no_grad():
        logits = model(torch.from_numpy(x).float())
    last = read_metrics(setup.root / "run")[-1]
    assert last["test_loss"] == pytest.approx(F.cross_entropy(logits, y).item(), abs=2e-5)
    assert last["test_acc"] == pytest.approx(
        (logits.argmax(1) == y).float().mean().item(), abs=1e-6
    )


def test_training_learns_the_learnable_toy_data(setup):
    rows = run_training(setup.config(epochs=4)) and read_metrics(setup.root / "run")
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.2


def test_schedule_is_the_papers(setup):
    config = TrainConfig(model="m", data_dir="d", out="o")  # every default
    assert config.epochs == 300 and config.milestone_epochs() == [150, 225]
    assert [config.lr_at(e) for e in (1, 150, 151, 225, 226, 300)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    assert (config.momentum, config.nesterov, config.weight_decay, config.batch_size) == (
        0.9,
        True,
        1e-4,
        64,
    )
    assert setup.config(epochs=1).lr_at(1) == 0.1  # a one-epoch smoke run starts at the initial lr


def test_same_seed_same_run_other_seed_another(setup):
    run_training(setup.config("a"))
    run_training(setup.config("b"))
    run_training(setup.config("c", seed=1))
    a, b, c = (_rows_without_seconds(setup.root / n) for n in "abc")
    assert a == b and a != c


def test_crash_mid_epoch_then_resume_equals_uninterrupted(setup, monkeypatch):
    run_training(setup.config("whole", hook="crash", epochs=3))
    monkeypatch.setenv("DERIVE_TEST_CRASH_AT", "10")  # 7 batches per epoch: batch 3 of epoch 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(setup.config("cut", hook="crash", epochs=3))
    cut = setup.root / "cut"
    assert load_checkpoint(cut / "checkpoint.pt")["epoch"] == 1 and len(read_metrics(cut)) == 1
    assert json.loads((cut / "summary.json").read_text())["status"] == "failed"
    monkeypatch.delenv("DERIVE_TEST_CRASH_AT")
    run_training(setup.config("cut", hook="crash", epochs=3, resume=True))
    assert _rows_without_seconds(cut) == _rows_without_seconds(setup.root / "whole")
    final_cut = load_checkpoint(cut / "checkpoint.pt")
    final_whole = load_checkpoint(setup.root / "whole" / "checkpoint.pt")
    for key, value in final_whole["model"].items():
        assert torch.equal(value, final_cut["model"][key]), key
    assert [s["start_epoch"] for s in final_cut["sessions"]] == [1, 2]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"momentum": 0.5}, "momentum 0.9 \\(checkpoint\\) vs 0.5"),
        ({"lr": 0.05}, "lr 0.1 \\(checkpoint\\) vs 0.05"),
        ({"augment": False}, "augment True"),
        ({"seed": 4}, "seed 0"),
        ({"hook": "nan"}, "model file:tiny_plain.py"),
    ],
)
def test_resume_refuses_a_different_recipe(setup, change, message):
    run_training(setup.config(epochs=3))
    before = (setup.root / "run" / "metrics.csv").read_text()
    kwargs = {"epochs": 3, **change}
    with pytest.raises(UserError, match=f"cannot --resume .*{message}"):
        run_training(setup.config(resume=True, **kwargs))
    assert (setup.root / "run" / "metrics.csv").read_text() == before


def test_resume_with_more_epochs_extends_the_run(setup):
    # Without lr drops, 2 epochs then 2 more equal 4 uninterrupted epochs exactly.
    flat = {"lr_gamma": 1.0}
    run_training(setup.config("whole", epochs=4, **flat))
    run_training(setup.config("ext", epochs=2, **flat))
    run_training(setup.config("ext", epochs=4, resume=True, **flat))
    assert _rows_without_seconds(setup.root / "ext") == _rows_without_seconds(setup.root / "whole")
    sessions = load_checkpoint(setup.root / "ext" / "checkpoint.pt")["sessions"]
    assert [(s["start_epoch"], s["epochs"]) for s in sessions] == [(1, 2), (3, 4)]
    # With drops, the epochs done keep their rates and the new ones follow the 4-epoch schedule
    # (drops after epochs 2 and 3): 0.1, 0.001 (the 2-epoch schedule), then 0.01, 0.001.
    run_training(setup.config("drop", epochs=2))
    first = _rows_without_seconds(setup.root / "drop")
    summary = run_training(setup.config("drop", epochs=4, resume=True))
    rows = _rows_without_seconds(setup.root / "drop")
    assert rows[:2] == first and [r["lr"] for r in rows] == pytest.approx([0.1, 0.001, 0.01, 0.001])
    assert summary["status"] == "completed" and len(rows) == 4


def test_resume_with_fewer_epochs_than_done_is_refused(setup):
    run_training(setup.config(epochs=3))
    with pytest.raises(UserError, match="already holds 3 epochs; give --epochs 3 or more"):
        run_training(setup.config(epochs=2, resume=True))
    assert len(read_metrics(setup.root / "run")) == 3


def test_resume_refuses_other_data(setup):
    run_training(setup.config(epochs=2))
    other = setup.root / "other"
    write_cifar10(other, per_file=40, n_test=60, seed=9)
    config = setup.config(epochs=2, resume=True)
    config.data_dir = str(other)
    with pytest.raises(UserError, match="data differ"):
        run_training(config)


def test_resume_may_change_runtime_options_and_noop_when_complete(setup):
    run_training(setup.config(epochs=2))
    before = read_metrics(setup.root / "run")
    summary = run_training(
        setup.config(epochs=2, resume=True, eval_batch_size=7, memory_format="channels_last")
    )
    assert summary["status"] == "completed" and read_metrics(setup.root / "run") == before


def test_existing_run_is_not_overwritten_without_resume_or_force(setup):
    run_training(setup.config(epochs=1))
    with pytest.raises(UserError, match="already holds a run.*--resume.*--force"):
        run_training(setup.config(epochs=2))
    assert len(read_metrics(setup.root / "run")) == 1
    run_training(setup.config(epochs=2, force=True))
    assert len(read_metrics(setup.root / "run")) == 2
    with pytest.raises(UserError, match="exclude each other"):
        setup.config(resume=True, force=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(setup, monkeypatch):
    monkeypatch.setenv("DERIVE_TEST_NAN_AT", "9")  # batch 2 of epoch 2
    with pytest.raises(
        TrainingDiverged, match="loss became nan in epoch 2.*last good epoch \\(1\\)"
    ):
        run_training(setup.config(hook="nan", epochs=3))
    run = setup.root / "run"
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["epoch"] == 1 and all(
        torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()
    )
    assert len(read_metrics(run)) == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"


def test_cifar100_run(tmp_path):
    write_cifar100(tmp_path / "data", n_train=100, n_test=40)
    model = write_model(tmp_path / "tiny.py")
    config = TrainConfig(
        model=str(model),
        dataset="cifar100",
        data_dir=str(tmp_path / "data"),
        out=str(tmp_path / "run"),
        epochs=1,
        batch_size=50,
        progress_interval=0,
    )
    summary = run_training(config)
    assert summary["dataset"]["num_classes"] == 100 and summary["model"][
        "parameters"
    ] == tiny_parameters(100)


def test_model_with_wrong_output_is_bad_input(setup):
    bad = setup.root / "bad.py"
    bad.write_text(
        "import torch.nn as nn\ndef create_model(num_classes=10):\n    return nn.Flatten()\n"
    )
    config = setup.config()
    config.model = str(bad)
    with pytest.raises(
        UserError, match=r"maps a 2x3x32x32 batch to \(2, 3072\), expected \(2, 10\)"
    ):
        run_training(config)
    assert not (setup.root / "run").exists()


def test_paper_init_switch(setup):
    module = load_python_file(str(setup.root / "tiny_plain.py"))
    own = build_model(setup.config(paper_init=False))
    paper = build_model(setup.config(paper_init=True))
    assert not torch.equal(own.conv.weight, paper.conv.weight)
    fan_out = 8 * 3 * 3
    assert paper.conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.25)
    bound = (6 / (8 + 10)) ** 0.5  # Xavier-uniform for the 8 -> 10 classifier
    assert paper.fc.weight.abs().max().item() <= bound and paper.fc.bias.abs().max().item() == 0
    assert module.create_model(10).conv.weight.shape == own.conv.weight.shape


def test_damaged_checkpoint_is_bad_input(setup):
    run_training(setup.config(epochs=1))
    (setup.root / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        run_training(setup.config(epochs=1, resume=True))


def test_bf16_channels_last_deterministic_paths_run(setup):
    """The options CUDA picks by default, exercised on the CPU: same files, finite numbers, recorded."""
    try:
        summary = run_training(
            setup.config(precision="bf16", memory_format="channels_last", deterministic=True)
        )
    finally:
        torch.use_deterministic_algorithms(False)
    assert summary["device"]["precision"] == "bf16 autocast"
    assert summary["device"]["memory_format"] == "channels_last"
    rows = read_metrics(setup.root / "run")
    assert len(rows) == 3 and all(
        np.isfinite(r["train_loss"]) and np.isfinite(r["test_loss"]) for r in rows
    )


def test_crash_then_resume_restores_the_lr_schedule(setup, monkeypatch):
    """A milestone inside the interrupted span: 4 epochs drop the lr after epochs 2 and 3.

    The run crashes in epoch 2, before the first drop; a resume that rebuilt the scheduler instead
    of restoring it would count epochs from 0 again and train epoch 3 at 0.1 instead of 0.01."""
    run_training(setup.config("whole", hook="crash", epochs=4))
    whole = _rows_without_seconds(setup.root / "whole")
    assert [r["lr"] for r in whole] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    monkeypatch.setenv("DERIVE_TEST_CRASH_AT", "10")  # 7 batches per epoch: batch 3 of epoch 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(setup.config("cut", hook="crash", epochs=4))
    monkeypatch.delenv("DERIVE_TEST_CRASH_AT")
    assert len(read_metrics(setup.root / "cut")) == 1
    run_training(setup.config("cut", hook="crash", epochs=4, resume=True))
    assert _rows_without_seconds(setup.root / "cut") == whole


@pytest.mark.parametrize("how", ["resume", "force"])
def test_stale_temporary_files_are_removed_at_the_start_of_a_run(setup, how):
    """A kill during an atomic write leaves `.checkpoint.pt.XXXXXXXX.tmp`: a later run (resumed or
    forced) removes those of its own files and leaves anything else alone."""
    run_training(setup.config(epochs=1))
    run = setup.root / "run"
    stale = [".checkpoint.pt.k2j4x_9a.tmp", ".metrics.csv.abcdefgh.tmp", ".summary.json.z1.tmp"]
    kept = [".notes.txt.abcdefgh.tmp", "mine.tmp", ".checkpoint.pt.tmp"]
    for name in stale + kept:
        (run / name).write_bytes(b"partial")
    run_training(setup.config(epochs=2, **{how: True}))
    names = {p.name for p in run.iterdir()}
    assert not names & set(stale) and set(kept) <= names
    assert len(read_metrics(run)) == 2
