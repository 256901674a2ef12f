"""`torchrun -m derive train` on this CPU: 2 gloo processes, --standalone, one thread each.

Two launches (~8 s each): a complete 2-process run (checkpointing after every step) compared with a
1-process run of the same global batch, and a 2-process run whose rank 1 dies in epoch 2, resumed on
1 process. The model has no BatchNorm, so 2 processes and 1 must agree up to float rounding.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from ddp_fixtures import torchrun, write_nobn_model
from train_fixtures import single_thread, write_cifar10  # noqa: F401

from derive.cli import main
from derive.errors import UserError
from derive.train.checkpoint import incompatibilities, load_checkpoint
from derive.train.config import TrainConfig, recipe_defaults
from derive.train.distributed import launch_from_env
from derive.train.loop import run_training
from derive.train.runfiles import RUN_FILES, read_metrics

# 65 training images, global batch 32: steps of 32, 32 and 1, so the last step splits 1 + 0 (rank 1
# computes a stand-in row with weight 0) and rank 0's loss is scaled by 2.
COMMON = [
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--eval-batch-size",
    "25",
    "--progress-interval",
    "0",
]
CLOSE = {"rtol": 1e-4, "atol": 1e-6}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    write_cifar10(root / "data", per_file=13, n_test=61)
    model = write_nobn_model(root / "nobn.py")
    reference = TrainConfig(
        model=str(model),
        data_dir=str(root / "data"),
        out=str(root / "single"),
        epochs=2,
        batch_size=32,
        eval_batch_size=25,
        progress_interval=0,
    )
    torch.set_num_threads(1)
    run_training(reference)  # the 1-process run every distributed run is compared with
    return root


def _args(root, out: str) -> list[str]:
    return [
        "train",
        str(root / "nobn.py"),
        "--data-dir",
        str(root / "data"),
        "--out",
        str(root / out),
    ]


def _weights(run_dir):
    return load_checkpoint(run_dir / "checkpoint.pt")["model"]


def _rows(run_dir):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(run_dir)]


def test_two_processes_equal_one_process_and_agree_with_each_other(files):
    dump = files / "dump"
    dump.mkdir()
    # a checkpoint after every step: each one gathers both ranks' in-epoch state (the slow
    # test_train_midepoch test resumes from one); the numbers must not change
    every_step = ["--checkpoint-every", "1steps"]
    done = torchrun(2, [*_args(files, "two"), *COMMON, *every_step], DERIVE_TEST_DUMP=str(dump))
    assert done.returncode == 0, done.stderr
    run = files / "two"
    assert sorted(p.name for p in run.iterdir()) == sorted(RUN_FILES)  # rank 0 alone wrote, no temp
    assert done.stdout.count("2 epochs, test error") == 1  # one result line, from rank 0
    assert done.stderr.count("checkpoint written after step") == 2 * 2  # steps 1, 2 of 3; 2 epochs

    single, two = _weights(files / "single"), _weights(run)
    for key in single:
        torch.testing.assert_close(two[key], single[key], **CLOSE)
    for a, b in zip(_rows(run), _rows(files / "single"), strict=True):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)
    # the test set (61 images) split 31 + 30, counts summed exactly: accuracy in 61ths
    assert all(round(r["test_acc"] * 61, 6) == round(r["test_acc"] * 61) for r in _rows(run))

    # every rank evaluated the same parameters after each epoch: those rank 0 saved at the end
    evals = sorted(p.name for p in dump.iterdir())
    last = max(int(re.search(r"eval(\d+)", n).group(1)) for n in evals)
    assert {f"rank{r}-eval{last}.pt" for r in (0, 1)} <= set(evals)
    r0, r1 = (torch.load(dump / f"rank{r}-eval{last}.pt") for r in (0, 1))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    assert all(torch.equal(r0[k], two[k]) for k in r0)

    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    dist = summary["distributed"]
    assert dist["backend"] == "gloo" and [r["rank"] for r in dist["ranks"]] == [0, 1]
    assert all(r["device"].startswith("cpu") for r in dist["ranks"])
    assert summary["sessions"][0]["world_size"] == 2


def test_a_dying_rank_stops_the_job_and_the_run_resumes_on_one_process(files):
    # 3 steps per epoch: rank 1's training batch 5 is step 2 of epoch 2
    done = torchrun(2, [*_args(files, "cut"), *COMMON], DERIVE_TEST_DIE_AT="5")
    assert done.returncode != 0
    err = done.stderr
    assert "exitcode" in err and "17" in err  # torchrun names the rank that died and its status
    assert "derive: error: rank 0 lost contact with the other ranks" in err or "SIGTERM" in err
    assert (
        "Traceback"
        not in err.split("ChildFailedError")[0].replace(
            "Traceback (most recent call last):\n  File", ""
        )
        or "torch/distributed/run.py" in err
    )  # the only traceback is torchrun's own report
    run = files / "cut"
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["epoch"] == 1 and len(read_metrics(run)) == 1
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]

    resumed = TrainConfig(
        model=str(files / "nobn.py"),
        data_dir=str(files / "data"),
        out=str(run),
        epochs=2,
        batch_size=32,
        eval_batch_size=25,
        progress_interval=0,
        resume=True,
    )
    summary = run_training(resumed)  # one process continues the 2-process run
    assert summary["status"] == "completed" and summary["world_size"] == 1
    assert [s["world_size"] for s in summary["sessions"]] == [2, 1]
    single = _weights(files / "single")
    for key, value in _weights(run).items():
        torch.testing.assert_close(value, single[key], **CLOSE)
    assert _rows(run)[1] == pytest.approx(_rows(files / "single")[1], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--batch-size", "33"],
            "--batch-size 33 is the global batch and must be divisible by the world size 2",
        ),
        (["--sync-bn"], "--sync-bn needs CUDA"),
    ],
)
def test_launch_errors_exit_2_with_one_line_before_anything_is_written(
    files, monkeypatch, capsys, extra, message
):
    """What torchrun's environment alone decides is checked before any process group."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main([*_args(files, "bad"), "--device", "cpu", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1 and message in err
    assert not (files / "bad").exists()


def test_launch_environment_is_read_and_checked(monkeypatch):
    assert launch_from_env({}).world_size == 1 and not launch_from_env({}).distributed
    launch = launch_from_env(
        {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    )
    assert (launch.rank, launch.world_size, launch.local_rank, launch.distributed) == (
        3,
        8,
        1,
        True,
    )
    with pytest.raises(UserError, match="not an integer"):
        launch_from_env({"WORLD_SIZE": "two"})
    with pytest.raises(UserError, match="inconsistent launch environment"):
        launch_from_env({"WORLD_SIZE": "2", "RANK": "2"})


def test_checkpoints_older_than_the_new_options_still_resume():
    """A checkpoint written before image_size/color_jitter/lighting existed matches their defaults."""
    now = TrainConfig(model="m", data_dir="d", out="o").recipe()
    before = {k: v for k, v in now.items() if k not in ("image_size", "color_jitter", "lighting")}
    state = {"model_id": "zoo:m", "data_id": "x", "recipe": before}
    defaults = recipe_defaults()
    assert incompatibilities(state, now, "zoo:m", "x", defaults=defaults) == []
    changed = {**now, "lighting": 0.2}
    assert incompatibilities(state, changed, "zoo:m", "x", defaults=defaults) == [
        "lighting 0.1 (checkpoint) vs 0.2 (now)"
    ]
