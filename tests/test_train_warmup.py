"""Warm-up (`--warmup-steps/--warmup-factor/--warmup-until-error`) and the per-step log (`--log-steps`)."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F
from train_fixtures import single_thread, write_cifar10, write_model  # noqa: F401

from derive.cli import main
from derive.errors import UserError
from derive.train.augment import BatchMaker, Normalizer
from derive.train.checkpoint import load_checkpoint, save_checkpoint
from derive.train.config import TrainConfig
from derive.train.data import channel_stats, load_cifar
from derive.train.loop import TrainingDiverged, build_model, run_training
from derive.train.runfiles import read_metrics
from derive.train.steplog import STEPS_HEADER, read_steps
from derive.train.warmup import ERROR_WINDOW, Warmup

BATCHES = 7  # 200 training images at batch 32


class Setup:
    def __init__(self, root) -> None:
        self.root = root
        write_cifar10(root / "data", per_file=40, n_test=60)
        self.models = {h: write_model(root / f"tiny_{h}.py", h) for h in ("plain", "crash", "nan")}

    def config(self, out: str = "run", hook: str = "plain", **options: object) -> TrainConfig:
        base = {"epochs": 3, "batch_size": 32, "progress_interval": 0, "eval_batch_size": 25}
        base.update(options)
        return TrainConfig(
            model=str(self.models[hook]),
            data_dir=str(self.root / "data"),
            out=str(self.root / out),
            **base,
        )


@pytest.fixture
def setup(tmp_path):
    return Setup(tmp_path)


def _rows(path):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(path)]


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoint.pt")["model"]


# --- the Warmup object against plain SGD arithmetic ---------------------------------------------


def test_warmup_scales_exactly_the_first_n_steps_and_restores_any_schedule():
    """p -= lr_used * g with momentum 0: the step size shows the lr each step really used."""
    p = torch.nn.Parameter(torch.zeros(()))
    opt = torch.optim.SGD([p], lr=0.5)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    warm = Warmup(steps=3, factor=0.1)
    sizes, scheduled = [], []
    for _epoch in range(4):
        for _ in range(2):  # 2 steps per epoch
            p.grad = torch.ones(())
            before = p.item()
            scheduled.append(opt.param_groups[0]["lr"])
            with warm.scaled(opt) as used:
                opt.step()
            assert opt.param_groups[0]["lr"] == scheduled[-1]  # restored after the step
            assert used == pytest.approx(before - p.item())
            sizes.append(before - p.item())
            warm.after_step()
        cosine.step()
    expected_schedule = [
        0.5 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4) for _ in (0, 1)
    ]
    assert scheduled == pytest.approx(expected_schedule)  # the cosine schedule is untouched
    factors = [0.1, 0.1, 0.1, 1, 1, 1, 1, 1]
    assert sizes == pytest.approx([s * f for s, f in zip(expected_schedule, factors, strict=True)])
    assert warm.ended_at == 3 and warm.step == 8 and not warm.active


def test_no_warmup_by_default_and_error_rule_ends_it_early_or_at_the_cap():
    assert not Warmup().active and Warmup().ended_at == 0
    warm = Warmup(steps=50, factor=0.01, until_error=80)
    for _ in range(ERROR_WINDOW):  # 85 % wrong: keeps warming up
        assert warm.active and warm.needs_counts
        warm.after_step(wrong=85, seen=100)
    # the window holds 20 steps: 19 at 85 % and then 19 at 50 % wrong ...
    for k in range(1, ERROR_WINDOW):
        warm.after_step(wrong=50, seen=100)
        window_error = (85 * (ERROR_WINDOW - k) + 50 * k) / ERROR_WINDOW
        assert warm.active == (window_error >= 80), k
        if not warm.active:
            break
    # (85 * 17 + 50 * 3) / 20 = 79.75 < 80: it ends after the 3rd good step, step 23
    assert warm.ended_at == ERROR_WINDOW + 3
    capped = Warmup(steps=5, factor=0.01, until_error=10)
    for _ in range(7):
        capped.after_step(wrong=90, seen=100)
    assert capped.ended_at == 5


def test_warmup_state_round_trip():
    a = Warmup(steps=30, factor=0.1, until_error=70)
    for i in range(12):
        a.after_step(wrong=90 - i, seen=100)
    b = Warmup(steps=30, factor=0.1, until_error=70)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for i in range(30):
        a.after_step(wrong=60 - i, seen=100)
        b.after_step(wrong=60 - i, seen=100)
        assert (a.active, a.step, a.ended_at) == (b.active, b.step, b.ended_at)


# --- warm-up in derive train ---------------------------------------------------------------------


def test_warmup_over_the_whole_run_equals_training_at_the_scaled_lr(setup):
    """SGD's momentum buffer does not depend on the lr, so lr 0.1 x 0.5 at every step must be
    bit-identical to lr 0.05 without warm-up."""
    run_training(setup.config("warm", lr=0.1, warmup_steps=10_000, warmup_factor=0.5, lr_gamma=1))
    run_training(setup.config("low", lr=0.05, lr_gamma=1))
    warm, low = _rows(setup.root / "warm"), _rows(setup.root / "low")
    assert [r["train_loss"] for r in warm] == [r["train_loss"] for r in low]
    for key, value in _weights(setup.root / "low").items():
        assert torch.equal(value, _weights(setup.root / "warm")[key]), key


def test_warmup_off_changes_nothing_and_on_changes_the_run(setup):
    run_training(setup.config("a", log_steps=True))
    run_training(setup.config("b", log_steps=True, warmup_steps=0, warmup_factor=0.3))
    run_training(setup.config("c", log_steps=True, warmup_steps=9, warmup_factor=0.25))
    a, b, c = (read_steps(setup.root / n) for n in "abc")
    assert a == b
    # 3 epochs at 0.1, 0.01, 0.001; the 9 warm-up steps span epoch 1 and 2 steps of epoch 2
    expected = [0.025] * 7 + [0.0025] * 2 + [0.01] * 5 + [0.001] * 7
    assert [r["lr"] for r in c] == pytest.approx(expected)
    assert c[0]["loss"] == a[0]["loss"] and c[1]["loss"] != a[1]["loss"]  # same init, other update
    summary = json.loads((setup.root / "c" / "summary.json").read_text())
    assert summary["options"]["warmup_steps"] == 9 and summary["options"]["warmup_factor"] == 0.25


def test_resume_in_the_middle_of_the_warmup_continues_exactly(setup, monkeypatch):
    options = {"epochs": 3, "warmup_steps": 10, "warmup_factor": 0.2, "log_steps": True}
    run_training(setup.config("whole", hook="crash", **options))
    monkeypatch.setenv("DERIVE_TEST_CRASH_AT", str(BATCHES + 2))  # epoch 2, step 9: warming up
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(setup.config("cut", hook="crash", **options))
    state = load_checkpoint(setup.root / "cut" / "checkpoint.pt")
    assert state["warmup"]["step"] == BATCHES and state["warmup"]["ended_at"] is None
    assert len(read_steps(setup.root / "cut")) == BATCHES  # steps.csv agrees with the checkpoint
    monkeypatch.delenv("DERIVE_TEST_CRASH_AT")
    run_training(setup.config("cut", hook="crash", resume=True, **options))
    assert read_steps(setup.root / "cut") == read_steps(setup.root / "whole")
    assert _rows(setup.root / "cut") == _rows(setup.root / "whole")
    for key, value in _weights(setup.root / "whole").items():
        assert torch.equal(value, _weights(setup.root / "cut")[key]), key


def test_resume_with_the_error_rule_continues_exactly(setup):
    # The tiny model needs the rule's window state across the epoch boundary.
    options = {
        "warmup_steps": 30,
        "warmup_factor": 0.1,
        "warmup_until_error": 88,
        "log_steps": True,
    }
    run_training(setup.config("whole", epochs=4, lr_gamma=1, **options))
    run_training(setup.config("ext", epochs=1, lr_gamma=1, **options))
    run_training(setup.config("ext", epochs=4, lr_gamma=1, resume=True, **options))
    steps = read_steps(setup.root / "whole")
    assert read_steps(setup.root / "ext") == steps
    # The rule recomputed from the log: the first step whose last-20-batches error is below 88 %.
    sizes = ([32] * 6 + [8]) * 4
    wrong = [round((1 - r["acc"]) * n) for r, n in zip(steps, sizes, strict=True)]
    end = next(
        s
        for s in range(1, len(steps) + 1)
        if 100 * sum(wrong[max(0, s - 20) : s]) / sum(sizes[max(0, s - 20) : s]) < 88
    )
    assert end > BATCHES  # the window crossed an epoch boundary (and a resume)
    assert [r["lr"] for r in steps] == pytest.approx([0.01] * end + [0.1] * (len(steps) - end))


def test_resume_checks_the_warmup_but_not_log_steps(setup):
    run_training(setup.config(epochs=2, warmup_steps=4))
    with pytest.raises(UserError, match="warmup_steps 4 \\(checkpoint\\) vs 5"):
        run_training(setup.config(epochs=3, warmup_steps=5, resume=True))
    with pytest.raises(UserError, match="warmup_factor 0.01 \\(checkpoint\\) vs 0.1"):
        run_training(setup.config(epochs=3, warmup_steps=4, warmup_factor=0.1, resume=True))
    run_training(setup.config(epochs=3, warmup_steps=4, resume=True, log_steps=True))
    steps = read_steps(setup.root / "run")
    assert [r["step"] for r in steps] == list(range(2 * BATCHES + 1, 3 * BATCHES + 1))


def test_an_older_checkpoint_without_the_new_options_resumes(setup):
    run_training(setup.config("old", epochs=1))
    path = setup.root / "old" / "checkpoint.pt"
    state = load_checkpoint(path)
    for key in ("warmup", "steps"):
        state.pop(key)
    for key in ("warmup_steps", "warmup_factor", "warmup_until_error", "shortcut", "conv_init"):
        state["recipe"].pop(key)
    state.pop("format")
    save_checkpoint(path, state)
    run_training(setup.config("old", epochs=2, resume=True))
    run_training(setup.config("new", epochs=2))
    assert _rows(setup.root / "old") == _rows(setup.root / "new")


# --- steps.csv -------------------------------------------------------------------------------------


def test_steps_csv_agrees_with_metrics_and_an_independent_gradient(setup):
    run_training(setup.config(log_steps=True, epochs=2))
    run = setup.root / "run"
    with open(run / "steps.csv", newline="") as handle:
        assert tuple(next(csv.reader(handle))) == STEPS_HEADER
    steps = read_steps(run)
    assert [int(r["step"]) for r in steps] == list(range(1, 2 * BATCHES + 1))
    assert [int(r["epoch"]) for r in steps] == [1] * BATCHES + [2] * BATCHES
    sizes = [32] * 6 + [8]  # 200 = 6 x 32 + 8
    for epoch, row in enumerate(read_metrics(run), start=1):
        mine = steps[(epoch - 1) * BATCHES : epoch * BATCHES]
        mean = sum(r["loss"] * n for r, n in zip(mine, sizes, strict=True)) / 200
        acc = sum(r["acc"] * n for r, n in zip(mine, sizes, strict=True)) / 200
        assert mean == pytest.approx(row["train_loss"], abs=1e-5)
        assert acc == pytest.approx(row["train_acc"], abs=1e-5)
    # step 1 by hand: the same init and first batch, the gradient by autograd.grad
    config = setup.config(log_steps=True, epochs=2)
    model = build_model(config).train()
    data = load_cifar("cifar10", config.data_dir)
    batches = BatchMaker(
        torch.from_numpy(data.train_images),
        torch.from_numpy(data.train_labels),
        Normalizer(*channel_stats(data.train_images), torch.device("cpu")),
        config.augment_options(),
    )
    x, y = next(iter(batches.train_batches(32, 0, 1)))
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
    assert steps[0]["loss"] == pytest.approx(loss.item(), abs=1e-6)
    assert steps[0]["grad_norm"] == pytest.approx(norm, rel=1e-5)


def test_without_log_steps_there_is_no_steps_csv(setup):
    run_training(setup.config(epochs=1))
    assert not (setup.root / "run" / "steps.csv").exists()


def test_a_diverged_run_logs_its_steps_up_to_the_nan(setup, monkeypatch):
    monkeypatch.setenv("DERIVE_TEST_NAN_AT", str(BATCHES + 3))
    with pytest.raises(TrainingDiverged):
        run_training(setup.config(hook="nan", log_steps=True))
    steps = read_steps(setup.root / "run")
    assert len(steps) == BATCHES + 3 and math.isnan(steps[-1]["loss"])
    assert all(math.isfinite(r["loss"]) for r in steps[:-1])


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--warmup-steps", "-1"], "--warmup-steps: expected an integer >= 0"),
        (["--warmup-steps", "20000000"], "--warmup-steps: expected an integer >= 0 of at most"),
        (["--warmup-factor", "0"], "--warmup-factor: expected a number in \\(0, 1\\]"),
        (["--warmup-factor", "1.5"], "--warmup-factor: expected a number in \\(0, 1\\]"),
        (["--warmup-until-error", "100"], "strictly between 0 and 100"),
        (["--warmup-until-error", "80"], "needs --warmup-steps N > 0"),
        (["--shortcut", "bogus"], "invalid choice"),
        (["--augment-per", "epoch"], "invalid choice"),
    ],
)
def test_bad_warmup_options_exit_2(tmp_path, capsys, extra, message):
    write_cifar10(tmp_path / "data", per_file=40, n_test=60)
    model = write_model(tmp_path / "tiny.py")
    argv = [
        "train",
        str(model),
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "run").exists()


def test_cli_warmup_and_log_steps(tmp_path, capsys):
    write_cifar10(tmp_path / "data", per_file=40, n_test=60)
    model = write_model(tmp_path / "tiny.py")
    argv = [
        "train",
        str(model),
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "run"),
    ]
    argv += ["--epochs", "1", "--batch-size", "32", "--warmup-steps", "3", "--warmup-factor", "0.1"]
    assert main(["-q", *argv, "--log-steps", "--progress-interval", "0"]) == 0
    capsys.readouterr()
    lrs = [r["lr"] for r in read_steps(tmp_path / "run")]
    assert lrs == pytest.approx([0.01] * 3 + [0.1] * (BATCHES - 3))


def test_the_cifar_report_names_the_warmup_in_the_recipe_column_and_command(setup):
    from derive.experiments.cifar.report import build_report

    run_training(setup.config("plain", epochs=1))
    run_training(setup.config("warm", epochs=1, warmup_steps=5, warmup_factor=0.1, log_steps=True))
    text = build_report([setup.root / "plain", setup.root / "warm"])
    rows = [line for line in text.splitlines() if line.startswith("| ") and "subset" in line]
    recipes = sorted(line.split(" | ")[7] for line in rows if "(n = 1)" in line)
    assert recipes == ["batch_size=32", "batch_size=32, warmup_steps=5, warmup_factor=0.1"], rows
    assert "--warmup-steps 5 --warmup-factor 0.1 --log-steps" in text
