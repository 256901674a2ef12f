"""Every size option is bounded, says why in --help, and a value past the bound is one line, exit 2,
nothing written; memory that a size decides is checked before a run; long input is not echoed whole."""

from __future__ import annotations

import argparse

import pytest
from train_fixtures import single_thread, write_cifar10, write_model  # noqa: F401

from derive import limits
from derive import memcheck as memory
from derive.cli import build_parser, main
from derive.errors import UserError
from derive.experiments.simulation.config import SimulationConfig
from derive.train.config import TrainConfig

# The options that set a size, a count or a seed: each must carry a bound.
SIZE_OPTIONS = {
    "network": ["--depth"],
    "simulate": ["--samples", "--dim", "--epochs", "--threads", "--seed", "--eval-every"],
    "train": [
        "--epochs",
        "--batch-size",
        "--eval-batch-size",
        "--pad",
        "--seed",
        "--progress-interval",
        "--cutout",
    ],
}
REQUIRED = {
    "train": ["m.py", "--data-dir", "d", "--out", "o"],
    "plot": ["r"],
    "export": ["resnet20", "--out", "o.pt2"],
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)


def _bounded_options() -> list[tuple[str, str, limits.Limit]]:
    out = []
    for command, sub in _subparsers().items():
        for action in sub._actions:
            limit = getattr(action.type, "limit", None)
            if limit is not None:
                out.append((command, action.option_strings[0], limit))
    return out


def test_every_size_option_has_a_bound():
    bounded = {(c, o) for c, o, _ in _bounded_options()}
    missing = [
        (c, o) for c, options in SIZE_OPTIONS.items() for o in options if (c, o) not in bounded
    ]
    assert not missing


@pytest.mark.parametrize("command,option,limit", _bounded_options())
def test_bound_is_in_help_and_enforced(command, option, limit):
    sub = _subparsers()[command]
    assert limit.reason and " ".join(limit.help().split()) in " ".join(sub.format_help().split())
    high = int(limit.high) if float(limit.high).is_integer() else limit.high
    argv = [command, *REQUIRED.get(command, []), option]
    parsed = build_parser().parse_args([*argv, str(high)])
    assert getattr(parsed, sub._option_string_actions[option].dest) == high
    with pytest.raises(UserError, match="at most") as info:
        build_parser().parse_args([*argv, str(high + 1)])
    assert limit.reason in str(info.value)


def test_seed_beyond_64_bits_is_refused_by_simulate_and_train(tmp_path, capsys):
    seed = str(2**64)
    assert main(["simulate", "--quick", "--seed", seed, "--out", str(tmp_path / "s")]) == 2
    model = write_model(tmp_path / "m.py")
    argv = ["train", str(model), "--data-dir", str(tmp_path), "--out", str(tmp_path / "t")]
    assert main([*argv, "--seed", seed]) == 2
    err = capsys.readouterr().err
    assert err.count("unsigned 64-bit seed") == 2
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()
    with pytest.raises(UserError, match="--seed"):
        TrainConfig(model="m", data_dir="d", out="o", seed=2**64)
    with pytest.raises(UserError, match="--seed"):
        SimulationConfig(seed=2**64)


def test_huge_thread_count_is_refused_before_the_output_exists(tmp_path, capsys):
    """10^6 threads made torch segfault after the output folder was created."""
    out = tmp_path / "sim"
    assert main(["simulate", "--quick", "--threads", "1000000", "--out", str(out)]) == 2
    assert "at most 1,024" in capsys.readouterr().err and not out.exists()
    with pytest.raises(UserError, match="--threads"):
        SimulationConfig(threads=10**6)


def test_simulation_that_cannot_fit_in_memory_is_refused(tmp_path, capsys):
    """10^7 pairs in dimension 5,000 are 400 GB of data alone: refused at once, nothing written."""
    out = tmp_path / "sim"
    argv = ["simulate", "--samples", "10000000", "--dim", "5000", "--depths", "1"]
    assert main([*argv, "--epochs", "1", "--device", "cpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs at least" in err and "GiB" in err and "lower --samples" in err
    assert not out.exists()


def test_simulation_memory_estimate_counts_data_weights_and_activations():
    """By hand: data 2·n·d floats; Adam: weight, gradient, two moments per weight; 2 activations."""
    n, d, depth, batch = 1000, 10, 3, 100
    expected = 4 * (2 * n * d + depth * (4 * d * d + 2 * batch * d))
    assert memory.simulation_bytes(n, d, (1, depth), batch, "adam") == expected
    sgd = 4 * (2 * n * d + depth * (3 * d * d + 2 * batch * d))
    assert memory.simulation_bytes(n, d, (depth,), batch, "sgd") == sgd


def test_training_batch_that_cannot_fit_is_refused_before_the_run_dir(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "data", per_file=8, n_test=10)
    model = write_model(tmp_path / "m.py")
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10**6)
    out = tmp_path / "run"
    config = TrainConfig(
        model=str(model), data_dir=str(tmp_path / "data"), out=str(out), batch_size=1000
    )
    from derive.train.loop import run_training

    with pytest.raises(UserError, match="lower --batch-size"):
        run_training(config)
    assert not out.exists()


def test_activation_estimate_matches_a_hand_count(tmp_path):
    """The tiny model: conv 3→8 stride 2 (8·16·16), BN (same), linear 8→10: float32 outputs."""
    from derive.models.registry import load_python_file

    model = load_python_file(str(write_model(tmp_path / "m.py"))).create_model(10)
    assert memory.activation_bytes_per_image(model) == 4 * (2 * 8 * 16 * 16 + 10)


def test_long_input_is_cut_in_the_message(capsys):
    """A 14 KB name used to come back whole on one line; now head and tail, with the count."""
    name = "y" * 14_000
    assert main(["network", "--algo", name, "--show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 500
    assert err.startswith("derive: error: unknown algorithm 'yyy") and "characters cut]" in err
    assert err.rstrip().endswith("or a .toml spec)")  # the tail (what is known) is kept
    long = "9" * 20000
    assert main(["train", "m.py", "--data-dir", "d", "--out", "o", "--lr", long + "x"]) == 2
    err = capsys.readouterr().err
    assert len(err) < 500 and "--lr" in err and "characters cut]" in err
