"""Checkpoints within an epoch: written by steps, by time and on SIGINT/SIGTERM; a run stopped inside an
epoch (signal or SIGKILL) and resumed ends bit for bit like the run that was never stopped."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import pytest
import torch
from ddp_fixtures import REPO, clean_env, torchrun
from train_fixtures import single_thread, write_cifar10  # noqa: F401

from derive.errors import UserError
from derive.signals import Terminated
from derive.train.checkpoint import Every, load_checkpoint, parse_every, save_checkpoint
from derive.train.config import TrainConfig
from derive.train.distributed import Dist, Launch
from derive.train.loop import _resume_position, run_training
from derive.train.midepoch import MidEpoch
from derive.train.runfiles import read_metrics
from derive.train.steplog import read_steps
from derive.train.warmup import Warmup

# Dropout (torch's RNG, per rank) and BatchNorm (running statistics): state that only an exact resume
# restores. At its N-th training forward, the process sends itself DERIVE_TEST_SIGNAL (a signal
# number) when its RANK is DERIVE_TEST_SIGNAL_RANK (default 0).
MODEL = """
import os
import signal

import torch
import torch.nn as nn


class TinyDropout(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(6, num_classes)
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            at = int(os.environ.get("DERIVE_TEST_SIGNAL_AT", "0"))
            rank = os.environ.get("RANK", "0")
            if self.calls == at and rank == os.environ.get("DERIVE_TEST_SIGNAL_RANK", "0"):
                os.kill(os.getpid(), int(os.environ["DERIVE_TEST_SIGNAL"]))
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(self.drop(x.mean((2, 3))))


def create_model(num_classes=10):
    return TinyDropout(num_classes)
"""
STEPS_PER_EPOCH = 7  # 200 training images, batch 32


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("midepoch")
    write_cifar10(root / "data", per_file=40, n_test=60)
    (root / "model.py").write_text(MODEL)
    return root


def _config(root, out: str, **options: object) -> TrainConfig:
    base = {
        "epochs": 2,
        "batch_size": 32,
        "eval_batch_size": 25,
        "progress_interval": 0,
        "log_steps": True,
        "cutout": 8,
        "warmup_steps": 9,
        "checkpoint_every": "0",
    }
    base.update(options)
    return TrainConfig(
        model=str(root / "model.py"), data_dir=str(root / "data"), out=str(root / out), **base
    )


def _cli_args(root, out: str, *extra: str) -> list[str]:
    return [
        "train",
        str(root / "model.py"),
        "--data-dir",
        str(root / "data"),
        "--out",
        str(root / out),
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--eval-batch-size",
        "25",
        "--progress-interval",
        "0",
        "--log-steps",
        "--cutout",
        "8",
        "--warmup-steps",
        "9",
        *extra,
    ]


@pytest.fixture(scope="module")
def whole(files):
    """The run never interrupted, in process."""
    torch.set_num_threads(1)
    run_training(_config(files, "whole"))
    return files / "whole"


def _assert_same_run(run_dir, reference) -> None:
    """Final weights, optimizer and scheduler states, metrics (but wall time) and step log, bit for bit."""
    got, want = (load_checkpoint(r / "checkpoint.pt") for r in (run_dir, reference))
    assert got.get("position") is None
    for part in ("model",):
        assert got[part].keys() == want[part].keys()
        for key in want[part]:
            assert torch.equal(got[part][key], want[part][key]), key
    for index, entry in want["optimizer"]["state"].items():
        for name, value in entry.items():
            assert torch.equal(got["optimizer"]["state"][index][name], value), (index, name)
    assert got["scheduler"] == want["scheduler"]
    assert got["warmup"] == want["warmup"]
    assert torch.equal(got["steps"], want["steps"])
    drop = ("seconds",)
    rows = [
        [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(d)]
        for d in (run_dir, reference)
    ]
    assert rows[0] == rows[1]
    assert read_steps(run_dir) == read_steps(reference)


def test_sigterm_inside_an_epoch_checkpoints_that_step_and_the_resumed_run_is_identical(
    files, whole, monkeypatch
):
    monkeypatch.setenv("DERIVE_TEST_SIGNAL", str(int(signal.SIGTERM)))
    monkeypatch.setenv("DERIVE_TEST_SIGNAL_AT", str(STEPS_PER_EPOCH + 3))  # step 3 of epoch 2
    with pytest.raises(Terminated):
        run_training(_config(files, "term"))
    state = load_checkpoint(files / "term" / "checkpoint.pt")
    position = state["position"]
    assert (state["epoch"], position["epoch"], position["step"]) == (1, 2, 3)
    assert position["steps"] == STEPS_PER_EPOCH and len(position["ranks"]) == 1
    assert len(read_metrics(files / "term")) == 1
    assert len(read_steps(files / "term")) == STEPS_PER_EPOCH + 3  # steps.csv agrees
    monkeypatch.delenv("DERIVE_TEST_SIGNAL_AT")
    run_training(_config(files, "term", resume=True))
    _assert_same_run(files / "term", whole)


def test_ctrl_c_in_the_first_epoch_no_longer_loses_it(files, whole, monkeypatch):
    monkeypatch.setenv("DERIVE_TEST_SIGNAL", str(int(signal.SIGINT)))
    monkeypatch.setenv("DERIVE_TEST_SIGNAL_AT", "4")
    with pytest.raises(KeyboardInterrupt) as caught:
        run_training(_config(files, "int"))
    assert not isinstance(caught.value, Terminated)
    position = load_checkpoint(files / "int" / "checkpoint.pt")["position"]
    assert (position["epoch"], position["step"]) == (1, 4)
    monkeypatch.delenv("DERIVE_TEST_SIGNAL_AT")
    run_training(_config(files, "int", resume=True))
    _assert_same_run(files / "int", whole)


def test_sigkill_resumes_from_the_last_periodic_checkpoint(files, whole):
    # a checkpoint every 2 steps of the run: the last before the kill (in step 10) is after step 8,
    # which is step 1 of epoch 2
    env = clean_env(DERIVE_TEST_SIGNAL=str(int(signal.SIGKILL)), DERIVE_TEST_SIGNAL_AT="10")
    command = [
        sys.executable,
        "-m",
        "derive",
        *_cli_args(files, "kill", "--checkpoint-every", "2steps"),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == -signal.SIGKILL, done.stderr
    position = load_checkpoint(files / "kill" / "checkpoint.pt")["position"]
    assert (position["epoch"], position["step"]) == (2, 1)
    assert not [p.name for p in (files / "kill").iterdir() if p.name.endswith(".tmp")]
    run_training(_config(files, "kill", resume=True))
    _assert_same_run(files / "kill", whole)


def test_checkpoints_by_time(files, caplog):
    caplog.set_level("INFO", logger="derive.train.loop")
    run_training(_config(files, "timed", epochs=1, checkpoint_every="0.00001"))  # 0.6 ms
    written = [r.getMessage() for r in caplog.records if "checkpoint written" in r.getMessage()]
    assert len(written) == STEPS_PER_EPOCH - 1  # after every step but the epoch's last
    assert load_checkpoint(files / "timed" / "checkpoint.pt").get("position") is None


def test_an_epoch_boundary_checkpoint_without_position_still_resumes(files, whole, monkeypatch):
    """Checkpoints written before mid-epoch checkpoints existed have no `position` field."""
    # a signal in the epoch's last step lets the epoch finish: its checkpoint is an epoch's end
    monkeypatch.setenv("DERIVE_TEST_SIGNAL", str(int(signal.SIGTERM)))
    monkeypatch.setenv("DERIVE_TEST_SIGNAL_AT", str(STEPS_PER_EPOCH))
    with pytest.raises(Terminated):
        run_training(_config(files, "old"))
    monkeypatch.delenv("DERIVE_TEST_SIGNAL_AT")
    path = files / "old" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    del state["position"]
    save_checkpoint(path, state)
    run_training(_config(files, "old", resume=True))
    _assert_same_run(files / "old", whole)


@pytest.fixture(scope="module")
def midway(files):
    """A checkpoint written after step 3 of epoch 1 (by a step count, no signal)."""
    run_training(_config(files, "mid", epochs=1, checkpoint_every="3steps"))  # ends with step 6's
    state = load_checkpoint(files / "mid" / "checkpoint.pt")
    assert state["position"] is None  # the epoch's end replaced it
    return state


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.update(step="3"), "position\\['step'\\] is str '3', expected an integer >= 1"),
        (
            lambda p: p.update(step=7),
            "position\\['step'\\] is int 7, expected fewer than the epoch's 7",
        ),
        (lambda p: p.update(epoch=3), "position\\['epoch'\\] is int 3, expected 1"),
        (lambda p: p.update(ranks=[]), "position\\['ranks'\\] is a list, expected 1 entries"),
        (
            lambda p: p["ranks"][0].update(loss_sum="x"),
            "position\\['ranks'\\]\\[0\\]\\['loss_sum'\\]",
        ),
        (
            lambda p: p["ranks"][0]["rng"].update(torch=torch.zeros(3)),
            "position\\['ranks'\\]\\[0\\]\\['rng'\\]\\['torch'\\] is a torch.float32",
        ),
        (
            lambda p: p["ranks"][0]["warmup"].update(step=-1),
            "position\\['ranks'\\]\\[0\\]\\['warmup'\\]\\['step'\\] is int -1",
        ),
    ],
)
def test_a_damaged_position_is_refused_naming_the_field(files, damage, message, tmp_path):
    run_training(_config(files, "dmg", epochs=1, checkpoint_every="3steps", force=True))
    state = load_checkpoint(files / "dmg" / "checkpoint.pt")
    state["epoch"], state["history"] = 0, []
    state["position"] = _sample_position()
    damage(state["position"])
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(UserError, match=f"is damaged: {message}"):
        load_checkpoint(path)


def _sample_position() -> dict[str, object]:
    from derive.train.provenance import rng_state
    from derive.train.warmup import Warmup

    entry = {
        "rng": rng_state(),
        "loss_sum": 1.5,
        "correct": 3,
        "seen": 96,
        "warmup": Warmup(9).state_dict(),
    }
    return {
        "epoch": 1,
        "step": 3,
        "steps": 7,
        "world_size": 1,
        "seconds": 0.5,
        "lr": 0.1,
        "ranks": [entry],
    }


def test_a_sound_position_loads(files, tmp_path):
    run_training(_config(files, "sound", epochs=1))
    state = load_checkpoint(files / "sound" / "checkpoint.pt")
    state["epoch"], state["history"], state["position"] = 0, [], _sample_position()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {k: v for k, v in state.items() if k != "format"})
    assert load_checkpoint(path)["position"]["step"] == 3


def test_a_mid_epoch_checkpoint_on_another_number_of_processes_resumes_with_a_warning(
    tmp_path, caplog
):
    two = Dist(launch=Launch(rank=0, world_size=2))
    position = _sample_position()
    assert _resume_position(tmp_path / "checkpoint.pt", {"position": position}, two) is position
    assert "written within epoch 1 by 1 process(es), this run has 2" in caplog.text
    assert _resume_position(tmp_path, {"position": None}, two) is None
    assert _resume_position(tmp_path, {}, two) is None


def test_each_rank_resumes_its_own_entry_of_the_position():
    """Rank by rank in this process, what the slow torchrun test checks end to end: on as many
    processes as wrote it, each rank gets its own RNG state, sums and warm-up back; on more, rank 0
    takes the epoch's sums so far and a rank without an entry keeps its own RNG."""
    saved = torch.get_rng_state()
    try:
        entries, draws = [], []
        for r in range(2):
            torch.manual_seed(100 + r)
            warm = Warmup(9)
            warm.step = 4 + r
            rng = torch.get_rng_state()
            draws.append(torch.rand(3))  # what this rank's RNG gives next
            entry = {"rng": {"torch": rng}, "loss_sum": 1.5 + r, "correct": 3 + r, "seen": 32}
            entries.append({**entry, "warmup": warm.state_dict()})
        position = {**_sample_position(), "epoch": 2, "world_size": 2, "ranks": entries}
        cpu = torch.device("cpu")
        for rank in range(2):
            mid, warm = MidEpoch(resume=position), Warmup(9)
            torch.manual_seed(0)
            step, seconds, sums = mid.start(2, rank, 2, warm, cpu)
            assert (step, seconds, mid.resume) == (3, 0.5, None)
            assert torch.equal(torch.rand(3), draws[rank]), rank
            assert (sums.loss_sum.item(), sums.correct.item(), sums.seen) == (
                1.5 + rank,
                3 + rank,
                32,
            )
            assert warm.step == 4 + rank
        assert MidEpoch(resume=position).start(1, 0, 2, Warmup(9), cpu)[:2] == (
            0,
            0.0,
        )  # other epoch
        # three processes now: rank 0 sums both entries, rank 2 has no entry and keeps its RNG
        first = MidEpoch(resume=position).start(2, 0, 3, Warmup(9), cpu)[2]
        assert (first.loss_sum.item(), first.correct.item(), first.seen) == (4.0, 7, 64)
        torch.manual_seed(5)
        fresh = torch.rand(3)
        torch.manual_seed(5)
        warm = Warmup(9)
        third = MidEpoch(resume=position).start(2, 2, 3, warm, cpu)[2]
        assert torch.equal(torch.rand(3), fresh) and warm.step == 5
        assert (third.loss_sum.item(), third.correct.item(), third.seen) == (0.0, 0, 0)
    finally:
        torch.set_rng_state(saved)


@pytest.mark.parametrize(
    "text, every",
    [
        ("5", Every(minutes=5.0)),
        ("0", Every()),
        ("0.5", Every(minutes=0.5)),
        ("200steps", Every(steps=200)),
        ("1step", Every(steps=1)),
    ],
)
def test_checkpoint_every_parses_minutes_or_steps(text, every):
    assert parse_every(text) == every


@pytest.mark.parametrize(
    "text, message",
    [
        ("-1", "between 0 and 1,440"),
        ("1441", "between 0 and 1,440"),
        ("nan", "between 0 and 1,440"),
        ("0steps", "NSTEPS must be between 1 and"),
        ("99999999steps", "NSTEPS must be between 1 and"),
        ("soon", "takes minutes .* or a number of steps"),
    ],
)
def test_checkpoint_every_out_of_bounds_is_one_line(text, message):
    with pytest.raises(UserError, match=message):
        parse_every(text)


def test_checkpoint_every_on_the_command_line(files, capsys):
    from derive.cli import main

    code = main(_cli_args(files, "cli-bad", "--checkpoint-every", "5 minutes"))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--checkpoint-every" in err
    assert not (files / "cli-bad").exists()


@pytest.mark.slow
def test_two_processes_interrupted_inside_an_epoch_resume_to_the_uninterrupted_run(files):
    """torchrun on gloo: SIGTERM reaches rank 1 alone at step 3 of epoch 2; both ranks stop there.

    Three torchrun launches; `make test` keeps the torchrun path in test_train_distributed.py and the
    in-epoch stop and exact resume in the one-process tests above."""
    whole2 = torchrun(2, _cli_args(files, "ddp-whole"))
    assert whole2.returncode == 0, whole2.stderr
    cut = torchrun(
        2,
        _cli_args(files, "ddp-cut"),
        DERIVE_TEST_SIGNAL=str(int(signal.SIGTERM)),
        DERIVE_TEST_SIGNAL_AT=str(STEPS_PER_EPOCH + 3),
        DERIVE_TEST_SIGNAL_RANK="1",
    )
    assert cut.returncode != 0
    state = load_checkpoint(files / "ddp-cut" / "checkpoint.pt")
    position = state["position"]
    assert (position["epoch"], position["step"], position["world_size"]) == (2, 3, 2)
    assert len(position["ranks"]) == 2
    assert not torch.equal(
        position["ranks"][0]["rng"]["torch"], position["ranks"][1]["rng"]["torch"]
    )
    shutil.copytree(files / "ddp-cut", files / "ddp-cut-one")
    resumed = torchrun(2, _cli_args(files, "ddp-cut", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming epoch 2 after step 3 of 7" in resumed.stderr
    _assert_same_run(files / "ddp-cut", files / "ddp-whole")

    # on one process the epoch goes on from the same step, its metric sums so far kept
    run_training(_config(files, "ddp-cut-one", resume=True))
    one, two = (read_metrics(files / r) for r in ("ddp-cut-one", "ddp-whole"))
    assert one[0]["train_loss"] == two[0]["train_loss"] and len(one) == 2
    assert one[1]["train_loss"] == pytest.approx(two[1]["train_loss"], rel=0.2)


def test_a_second_signal_or_a_step_that_never_ends_stops_at_once(monkeypatch):
    import os
    import time

    from derive.train import interrupts

    with interrupts.deferred_interrupts() as caught:
        os.kill(os.getpid(), signal.SIGINT)
        assert caught.requested  # the first one only asks
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    monkeypatch.setattr(interrupts, "GRACE_SECONDS", 0.1)
    started = time.monotonic()
    with pytest.raises(Terminated), interrupts.deferred_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # a hanging step
    assert time.monotonic() - started < 3
    time.sleep(0.2)  # the deadline was cancelled with the block: no late alarm


def test_no_checkpoint_after_a_non_finite_loss_between_host_syncs(tmp_path, monkeypatch):
    """On CUDA the host looks at the loss every 32 steps; a checkpoint between looks first."""
    from train_fixtures import write_model

    from derive.train import loop

    def every_fourth(config):
        runtime = resolve(config)
        runtime.sync_every = 4
        return runtime

    resolve = loop.resolve_runtime
    monkeypatch.setattr(loop, "resolve_runtime", every_fourth)
    monkeypatch.setenv("DERIVE_TEST_NAN_AT", "3")
    write_cifar10(tmp_path / "data", per_file=40, n_test=60)
    config = TrainConfig(
        model=str(write_model(tmp_path / "nan.py", "nan")),
        data_dir=str(tmp_path / "data"),
        out=str(tmp_path / "run"),
        epochs=1,
        batch_size=32,
        eval_batch_size=25,
        progress_interval=0,
        checkpoint_every="1steps",
    )
    with pytest.raises(loop.TrainingDiverged, match="holds the last good step \\(2 of epoch 1\\)"):
        run_training(config)
    position = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["position"]
    assert (
        position["step"] == 2
        and position["ranks"][0]["loss_sum"] == position["ranks"][0]["loss_sum"]
    )


def test_imagenet_runs_resume_inside_an_epoch_exactly(tmp_path, monkeypatch):
    """The ImageFolder loader: crops and flips are keyed by image and epoch, so skipping steps is exact."""
    pytest.importorskip("torchvision")
    from ddp_fixtures import write_imagefolder

    from derive.cli import main

    write_imagefolder(tmp_path / "data")  # 18 training images: 5 steps of 4 per epoch
    (tmp_path / "model.py").write_text(MODEL)

    def argv(out: str, *extra: str) -> list[str]:
        return [
            "train",
            str(tmp_path / "model.py"),
            "--dataset",
            "imagenet",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / out),
            "--image-size",
            "32",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--progress-interval",
            "0",
            "--log-steps",
            *extra,
        ]

    assert main(argv("whole")) == 0
    monkeypatch.setenv("DERIVE_TEST_SIGNAL", str(int(signal.SIGTERM)))
    monkeypatch.setenv("DERIVE_TEST_SIGNAL_AT", "7")  # step 2 of epoch 2
    assert main(argv("cut")) == 143
    position = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["position"]
    assert (position["epoch"], position["step"], position["steps"]) == (2, 2, 5)
    monkeypatch.delenv("DERIVE_TEST_SIGNAL_AT")
    assert main(argv("cut", "--resume")) == 0
    _assert_same_run(tmp_path / "cut", tmp_path / "whole")
