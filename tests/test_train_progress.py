"""The time-left estimate of the progress lines: one formatter for training and simulation."""

from __future__ import annotations

import io
import math

import pytest

from derive.timefmt import duration, time_left
from derive.train.progress import Progress, progress_line, seconds_left


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0 s"),
        (44.6, "45 s"),
        (89, "89 s"),
        (90, "2 min"),
        (5399, "90 min"),
        (5400, "1.5 h"),
        (36 * 3600, "36.0 h"),
        (math.inf, "?"),
        (math.nan, "?"),
        (-1, "?"),
    ],
)
def test_duration_words(seconds, text):
    assert duration(seconds) == text


def test_time_left_phrase():
    assert time_left(600) == "about 10 min left"


def test_seconds_left_before_and_after_a_finished_epoch():
    # batch 3 of 10 at 2 s a step, epoch 2 of 5: 14 s left in the epoch
    epoch_left, run_left = seconds_left(2, 5, 3, 10, 2.0)
    assert epoch_left == 14.0 and run_left == 14.0 + 3 * 20.0  # later epochs: 10 steps of 2 s
    _, run_left = seconds_left(2, 5, 3, 10, 2.0, epoch_seconds=30.0)  # evaluation included
    assert run_left == 14.0 + 3 * 30.0
    assert seconds_left(5, 5, 10, 10, 2.0) == (0.0, 0.0)


def test_every_progress_line_says_the_time_left_in_the_epoch_and_the_run():
    stream = io.StringIO()
    progress = Progress(interval=1, stream=stream)
    progress.show(1, 3, 5, 10, 0.5, 0.25, 1000.0, step_seconds=12.0)
    line = stream.getvalue().strip()
    assert line == progress_line(1, 3, 5, 10, 0.5, 0.25, 1000.0, (60.0, 60.0 + 2 * 120.0))
    assert line.endswith("epoch: about 60 s left, run: about 5 min left")
    progress.end_epoch(150.0)
    assert progress.run_left(1, 3) == 300.0


def test_a_training_run_shows_the_time_left_on_every_line(tmp_path, caplog):
    from train_fixtures import write_cifar10, write_model

    from derive.train.config import TrainConfig
    from derive.train.loop import run_training

    write_cifar10(tmp_path / "data", per_file=40, n_test=60)
    model = write_model(tmp_path / "tiny.py", "plain")
    config = TrainConfig(
        model=str(model),
        data_dir=str(tmp_path / "data"),
        out=str(tmp_path / "run"),
        epochs=2,
        batch_size=32,
        eval_batch_size=25,
    )
    stream = io.StringIO()
    caplog.set_level("INFO", logger="derive.train.loop")
    run_training(config, Progress(interval=1e-9, stream=stream))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 * 7  # a line after every step of both epochs
    assert all(", run: about " in line and "  epoch: about " in line for line in lines)
    ends = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert "run: about" in ends[0] and "run:" not in ends[1]  # nothing left after the last
