"""`derive train FILE.py --model-arg NAME=VALUE`: keyword arguments for a model file's create_model.

A generated conv module builds the papers' networks from its arguments (its docstring says which),
checked here against the zoo's networks; bad arguments are refused before anything is written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from train_fixtures import single_thread, write_cifar10, write_model  # noqa: F401
from zoo_meta import shapes_only

from derive.cli import main
from derive.codegen.loader import generated_dir, load_generated
from derive.codegen.papers import PAPER_NETWORKS
from derive.errors import UserError
from derive.modelargs import collect, parse_value
from derive.models import create_model, resolve_model

HEAVYBALL = str(generated_dir() / "heavyball_conv.py")
HBNET = ("--model-arg", "coefficients.beta1=1", "--model-arg", "coefficients.beta2=-1")


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _shapes(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(t.shape)) for name, t in model.state_dict().items()]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    write_cifar10(tmp_path / "data", per_file=4, n_test=6)
    return tmp_path


def _train(files: Path, model: str, *extra: str) -> list[str]:
    """argv for one optimizer step (20 images at batch 20) on the fixture data: the checks read
    the run's options, its network and its exit status, which the number of images does not
    change."""
    return [
        "-q",
        "train",
        model,
        "--data-dir",
        str(files / "data"),
        "--out",
        str(files / "run"),
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--eval-batch-size",
        "6",
        "--device",
        "cpu",
        *extra,
    ]


def test_file_model_trains_the_network_its_arguments_ask_for(files: Path) -> None:
    assert main(_train(files, HEAVYBALL, "--model-arg", "depth=20", *HBNET)) == 0
    summary = json.loads((files / "run" / "summary.json").read_text())
    zoo = create_model("hbnet20")
    assert summary["model"]["parameters"] == _parameters(zoo)
    assert summary["model"]["parameters"] != _parameters(
        load_generated("heavyball_conv").create_model()
    )
    assert summary["options"]["model_args"] == {
        "depth": 20,
        "coefficients": {"beta1": 1, "beta2": -1},
    }


def test_resume_checks_the_model_arguments(files: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(_train(files, HEAVYBALL, "--model-arg", "depth=8", *HBNET)) == 0
    capsys.readouterr()
    resumed = _train(files, HEAVYBALL, "--model-arg", "depth=8", "--resume")
    assert main(resumed) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model_args" in err, err


@pytest.mark.parametrize("network", [n for ns in PAPER_NETWORKS.values() for n in ns])
def test_documented_arguments_build_the_zoo_network(network: object) -> None:
    """Each network a generated docstring lists is the zoo's: same parameters, same shapes."""
    algorithm = next(a for a, ns in PAPER_NETWORKS.items() if network in ns)
    path = str(generated_dir() / f"{algorithm}_conv.py")
    with shapes_only():  # shapes and names only: no storage, no initialisation
        model = resolve_model(path, 10, **collect(network.command(path).split(" --model-arg ")[1:]))
        zoo = create_model(network.zoo)
    assert _shapes(model) == _shapes(zoo)
    learnable = {n for n, p in model.named_parameters()} == {n for n, p in zoo.named_parameters()}
    assert learnable and _parameters(model) == _parameters(zoo)


def test_docstring_shows_how_to_build_hbnet56() -> None:
    doc = load_generated("heavyball_conv").__doc__
    assert "create_model(depth=56, coefficients={'beta1': 1.0, 'beta2': -1.0})" in doc
    assert (
        "derive train heavyball_conv.py --model-arg depth=56 --model-arg coefficients.beta1=1.0 "
        "--model-arg coefficients.beta2=-1.0" in doc
    )


@pytest.mark.parametrize(
    "model, args, message",
    [
        ("heavyball", ["dept=20"], r"takes no argument 'dept' \(it takes: algorithm_coefficients"),
        ("heavyball", ["depth=2.5"], r"depth takes int, got 2\.5"),
        ("heavyball", ["depth=true"], r"depth takes int, got True"),
        ("heavyball", ["depth=9"], r"depth must be 6n \+ 2"),
        ("heavyball", ["coefficients=1"], r"coefficients takes Mapping.*cannot give"),
        ("heavyball", ["depth.x=1"], r"depth is not a mapping"),
        ("heavyball", ["modes.beta2=3"], r"modes\.beta2 takes str, got 3 .*modes\.beta2='3'"),
        ("heavyball", ["num_classes=3"], r"num_classes.*comes from --dataset"),
        ("heavyball", ["memory=checkpoint"], r"use --memory"),
        ("heavyball", ["depth=20", "depth=56"], r"depth is given twice"),
        ("heavyball", ["depth=1e7"], r"beyond ±1,000,000"),
        ("heavyball", ["depth=inf"], r"not a finite number"),
        ("heavyball", ["depth"], r"expected NAME=VALUE"),
        ("heavyball", ["__class__=1"], r"expected NAME=VALUE"),
        ("heavyball", ["x" * 300 + "=1"], r"at most 200 characters"),
        (
            "resnet56",
            ["depth=20"],
            r"resnet56: create_model takes no argument 'depth'.*zoo network",
        ),
    ],
)
def test_bad_model_arguments_exit_2_with_one_line_and_write_nothing(
    files: Path, capsys: pytest.CaptureFixture, model: str, args: list[str], message: str
) -> None:
    spec = HEAVYBALL if model == "heavyball" else model
    argv = _train(files, spec, *[part for a in args for part in ("--model-arg", a)])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not (files / "run").exists()


def test_a_user_file_with_kwargs_is_its_own_judge(files: Path, capsys) -> None:
    """A create_model(**options) gets any name; one it cannot use is still one line, exit 2."""
    path = write_model(files / "tiny.py")
    source = path.read_text().replace(
        "def create_model(num_classes=10):",
        "def create_model(num_classes=10, **options):\n    assert not options, f'no use for {options}'",
    )
    assert "**options" in source
    path.write_text(source)
    argv = _train(files, str(path), "--model-arg", "width=3")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "width" in err, err
    assert not (files / "run").exists()


@pytest.mark.parametrize(
    "text, value",
    [("true", True), ("False", False), ("56", 56), ("-1", -1), ("0.3", 0.3), ("1e-4", 1e-4)]
    + [("ones", "ones"), ("'56'", "56"), ('"a b"', "a b"), ("", "")],
)
def test_values_are_parsed_without_evaluating(text: str, value: object) -> None:
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_expressions_stay_strings() -> None:
    assert parse_value("__import__('os')") == "__import__('os')"
    with pytest.raises(UserError):
        collect(["a=1", "a.b=2"])
