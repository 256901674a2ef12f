"""`derive train --memory ...`: the same run in every mode, resumable across modes, bad requests exit 2."""

from __future__ import annotations

import json
import textwrap

import pytest
from train_fixtures import single_thread, write_cifar10  # noqa: F401

from derive.cli import main
from derive.train.runfiles import read_metrics

TINY_HBNET = textwrap.dedent(
    """
    from derive.codegen.loader import load_generated


    def create_model(num_classes=10):
        return load_generated("heavyball_conv").cifar_preact_resnet(
            depth=14, widths=(4, 4, 4), num_classes=num_classes,
            coefficients={"beta1": 1.0, "beta2": -1.0},
        )
    """
)


@pytest.fixture
def files(tmp_path):
    write_cifar10(tmp_path / "data", per_file=20, n_test=30)
    (tmp_path / "tiny_prehbnet.py").write_text(TINY_HBNET, encoding="utf-8")
    return tmp_path


def _train(files, out: str, model: str | None = None, *extra: str) -> int:
    return main(
        [
            "-q",
            "train",
            model or str(files / "tiny_prehbnet.py"),
            "--data-dir",
            str(files / "data"),
            "--out",
            str(files / out),
            "--batch-size",
            "25",
            "--epochs",
            "2",
            "--progress-interval",
            "0",
            *extra,
        ]
    )


def _rows(files, out: str) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(files / out)]


def test_modes_give_the_same_run(files):
    for mode in ("standard", "checkpoint", "reversible"):
        assert _train(files, mode, None, "--memory", mode) == 0
        summary = json.loads((files / mode / "summary.json").read_text(encoding="utf-8"))
        assert summary["options"]["memory"] == mode
    assert _rows(files, "checkpoint") == _rows(files, "standard")  # recomputation is exact
    for rev, std in zip(_rows(files, "reversible"), _rows(files, "standard"), strict=True):
        assert rev == pytest.approx(std, abs=1e-4)  # float32 reconstruction, 16 SGD steps


def test_a_run_resumes_in_another_mode(files):
    assert _train(files, "run", None, "--epochs", "1") == 0
    assert _train(files, "run", None, "--resume", "--memory", "reversible") == 0
    summary = json.loads((files / "run" / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed" and summary["options"]["memory"] == "reversible"
    assert len(read_metrics(files / "run")) == 2


@pytest.mark.parametrize(
    "model,reason",
    [
        ("resnet56", "ρ = relu after the sum"),
        ("preresnet56", "β₂ is pruned"),
        ("densenet40", "all-history form"),
    ],
)
def test_reversible_on_a_network_that_is_not_invertible_exits_2(files, capsys, model, reason):
    assert _train(files, "run", model, "--memory", "reversible") == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1
    assert "not invertible" in err and reason in err
    assert not (files / "run").exists()


def test_unknown_memory_mode_exits_2(files, capsys):
    assert _train(files, "run", None, "--memory", "swap") == 2
    assert "invalid choice: 'swap'" in capsys.readouterr().err


@pytest.mark.slow
def test_reversible_under_ddp_equals_standard_under_ddp(files):
    """torchrun, 2 gloo processes: the Function's parameter gradients reach DDP's all-reduce."""
    from ddp_fixtures import torchrun

    for mode in ("standard", "reversible"):
        args = ["-q", "train", str(files / "tiny_prehbnet.py"), "--data-dir", str(files / "data")]
        args += ["--out", str(files / mode), "--epochs", "2", "--batch-size", "20"]
        args += ["--eval-batch-size", "25", "--progress-interval", "0", "--memory", mode]
        done = torchrun(2, args)
        assert done.returncode == 0, done.stderr[-2000:]
    for rev, std in zip(_rows(files, "reversible"), _rows(files, "standard"), strict=True):
        assert rev == pytest.approx(std, abs=1e-4)


def test_derive_train_sets_the_allocator_up_for_its_mode(files, monkeypatch):
    """The run starts by choosing how freed memory goes back to the system (derive.allocator)."""
    import derive.train.loop as loop

    modes: list[str] = []
    monkeypatch.setattr(loop, "configure_allocator", lambda memory: modes.append(memory) or "")
    assert _train(files, "run", None, "--epochs", "1", "--memory", "reversible") == 0
    assert modes == ["reversible"]
