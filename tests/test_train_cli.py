"""`derive train` from the command line: help, exit statuses, progress, and resume after SIGKILL."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_fixtures import single_thread, write_cifar10, write_model  # noqa: F401

from derive.cli import build_parser, main
from derive.train.checkpoint import load_checkpoint
from derive.train.runfiles import read_metrics

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def files(tmp_path):
    write_cifar10(tmp_path / "data", per_file=40, n_test=60)
    return tmp_path


def _train(tmp_path, *extra: str, hook: str = "plain") -> list[str]:
    """argv for `derive train` on the fixture data with a tiny model (`hook`: see train_fixtures.HOOKS)."""
    model = write_model(tmp_path / f"tiny_{hook}.py", hook)
    return [
        "train",
        str(model),
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "run"),
        *extra,
    ]


def _subparser(name: str):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name]


@pytest.mark.parametrize("command", ["train", "plot"])
def test_help_explains_every_option_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"derive {command} " in text
    for action in _subparser(command)._actions:
        assert action.help, action.dest
        for option in action.option_strings:
            assert option in text


def test_contract_options_and_defaults(capsys):
    args = _subparser("train").parse_args(["m", "--data-dir", "d", "--out", "o"])
    assert (args.epochs, args.batch_size, args.seed, args.resume, args.dataset) == (
        300,
        64,
        0,
        False,
        "cifar10",
    )
    assert (args.lr, args.momentum, args.nesterov, args.weight_decay) == (0.1, 0.9, True, 1e-4)
    assert args.lr_milestones == (0.5, 0.75) and args.augment and args.paper_init


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--epochs", "0"], "--epochs: expected a positive integer"),
        (["--batch-size", "x"], "--batch-size: expected a positive integer"),
        (["--lr", "nan"], "--lr: expected a number >= 0"),
        (["--dataset", "mnist"], "invalid choice: 'mnist'"),
        (["--lr-milestones", "0.75,0.5"], "increasing fractions"),
        (["--resume", "--force"], "exclude each other"),
        (
            ["--device", "cuda"] if not torch.cuda.is_available() else ["--lr", "0"],
            "cuda|--lr must be positive",
        ),
    ],
)
def test_bad_options_exit_2_with_one_line_and_write_nothing(files, capsys, extra, message):
    assert main(_train(files, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (files / "run").exists()


def test_bad_data_and_model_exit_2(files, capsys):
    (files / "data" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04\x95")
    assert main(_train(files)) == 2
    assert "data_batch_3' is truncated" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                str(files / "missing.py"),
                "--data-dir",
                str(files / "data"),
                "--out",
                str(files / "run"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert not (files / "run").exists()


def test_progress_epoch_lines_and_result_line(files, capsys, caplog):
    caplog.set_level(logging.INFO)
    assert (
        main(
            _train(files, "--epochs", "2", "--batch-size", "50", "--progress-interval", "0.000001")
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "epoch 1/2  batch 1/4  loss " in captured.err and " img/s" in captured.err
    assert caplog.text.count("train loss") == 2 and "epoch 2/2  train loss" in caplog.text
    assert "2 epochs, test error final" in captured.out
    assert (
        main(["-q", *_train(files, "--epochs", "3", "--resume", "--progress-interval", "0.000001")])
        == 2
    )
    assert "batch_size 50 (checkpoint) vs 64 (now)" in capsys.readouterr().err
    extend = ["--epochs", "3", "--batch-size", "50", "--resume", "--progress-interval", "0"]
    assert main(["-q", *_train(files, *extend)]) == 0  # more epochs extend the run
    assert "resuming with --epochs 3 instead of 2" in caplog.text


def test_nan_exits_3_and_keeps_checkpoint(files, capsys, monkeypatch):
    monkeypatch.setenv("DERIVE_TEST_NAN_AT", "6")  # 4 batches per epoch: batch 2 of epoch 2
    assert main(_train(files, "--epochs", "3", "--batch-size", "50", hook="nan")) == 3
    err = capsys.readouterr().err
    assert "derive: error: training loss became nan in epoch 2" in err
    assert load_checkpoint(files / "run" / "checkpoint.pt")["epoch"] == 1


def _spawn(args: list[str], **env: str) -> subprocess.Popen:
    """`python -m derive ARGS` in a fresh process: one thread, and only the test hooks given in `env`."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DERIVE_TEST_")}
    full_env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **env)
    return subprocess.Popen(
        [sys.executable, "-m", "derive", *args],
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path, caplog):
    """Kill -9 in the middle of epoch 2; --resume completes epochs 2 and 3 once each, bit for bit.

    Only the killed run is a child process (SIGKILL is what the test is about); the uninterrupted
    run and the resume run in this process, on one thread like the child. `make test` keeps a
    SIGKILLed child resumed bit for bit in test_train_midepoch.py, and a run stopped within an epoch
    resumed from its epoch's start in test_train_run.py."""
    write_cifar10(tmp_path / "data", per_file=40, n_test=60)
    model = str(write_model(tmp_path / "tiny.py", "hang"))
    common = [
        model,
        "--data-dir",
        str(tmp_path / "data"),
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--seed",
        "7",
    ]
    marker = tmp_path / "hanging"
    # 7 batches per epoch: training call 10 is batch 3 of epoch 2
    cut = _spawn(
        ["train", *common, "--out", str(tmp_path / "cut")],
        DERIVE_TEST_HANG_AT="10",
        DERIVE_TEST_MARKER=str(marker),
    )
    assert main(["-q", "train", *common, "--out", str(tmp_path / "whole")]) == 0
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert cut.poll() is None, cut.communicate()
        assert time.monotonic() < deadline, "the run never reached the hang point"
        time.sleep(0.05)
    cut.send_signal(signal.SIGKILL)
    cut.wait(timeout=30)
    assert cut.returncode == -signal.SIGKILL
    run = tmp_path / "cut"
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1 and len(read_metrics(run)) == 1
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]

    caplog.clear()
    caplog.set_level(logging.INFO)
    assert main(["train", *common, "--out", str(run), "--resume"]) == 0
    err = caplog.text
    assert (
        "epoch 1/3  train" not in err
        and err.count("epoch 2/3  train") == 1
        and err.count("epoch 3/3  train") == 1
    )

    def rows(path):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(path)]

    assert [r["epoch"] for r in rows(run)] == [1, 2, 3]
    assert rows(run) == rows(tmp_path / "whole")
    a = load_checkpoint(run / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_in_process_is_handled_like_ctrl_c(tmp_path, capsys, monkeypatch):
    """The same handler as a `kill PID` from outside (the slow test below): the run records
    "interrupted", exits 143 (128 + SIGTERM) with one line and no traceback."""
    write_cifar10(tmp_path / "data", per_file=40, n_test=60)
    model = str(write_model(tmp_path / "tiny.py", "signal"))
    monkeypatch.setenv("DERIVE_TEST_SIGNAL", str(int(signal.SIGTERM)))
    monkeypatch.setenv("DERIVE_TEST_SIGNAL_AT", "10")  # batch 3 of epoch 2
    run = tmp_path / "run"
    argv = ["train", model, "--data-dir", str(tmp_path / "data"), "--epochs", "2"]
    assert main([*argv, "--out", str(run), "--batch-size", "32"]) == 143
    err = capsys.readouterr().err
    assert "derive: interrupted (SIGTERM)" in err and "Traceback" not in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_completed"] == 1
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    """`kill PID` used to leave summary.json saying "running"; now the run records "interrupted",
    exits 143 (128 + SIGTERM) and resumes like any interrupted run."""
    write_cifar10(tmp_path / "data", per_file=40, n_test=60)
    model = str(write_model(tmp_path / "tiny.py", "hang"))
    marker = tmp_path / "hanging"
    argv = ["train", model, "--data-dir", str(tmp_path / "data"), "--epochs", "2"]
    run = tmp_path / "run"
    proc = _spawn(
        [*argv, "--out", str(run), "--batch-size", "32"],
        DERIVE_TEST_HANG_AT="10",
        DERIVE_TEST_MARKER=str(marker),
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached the hang point"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "derive: interrupted (SIGTERM)" in err and "Traceback" not in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_completed"] == 1
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
