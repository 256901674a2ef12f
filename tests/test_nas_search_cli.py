"""`derive nas search` end to end on tiny synthetic CIFAR files: run files, resume, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from train_fixtures import single_thread, write_cifar10  # noqa: F401

from derive.cli import main
from derive.nas import load_genotype
from derive.nas.searchfiles import METRICS_HEADER, read_metrics

TINY = ["--channels", "4", "--cells", "3", "--image-size", "8", "--batch-size", "8"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 training images, read (never written) by every search of this file."""
    return write_cifar10(tmp_path_factory.mktemp("data"), per_file=8, n_test=10).root


# 16 images: one batch of 8 per half an epoch (the run stops and resumes between epochs)
AGD_RUN = ("--epochs", "2", "--limit-images", "16")


@pytest.fixture(scope="module")
def agd_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch AGD search, run once: the straight run the resume test compares with,
    the run the refusals are tried on (as a copy) and the genotype the end-to-end test builds.
    Module scope: made before the function-scoped single_thread, so one thread is set here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("agd") / "straight"
    assert search(data, out, *AGD_RUN, space="agd") == 0
    torch.set_num_threads(threads)
    return out


def search(data: Path, out: Path, *extra: str, space: str = "heavyball") -> int:
    argv = ["-q", "nas", "search", "--space", space, "--dataset", "cifar10"]
    argv += ["--data-dir", str(data), "--out", str(out), *TINY, "--no-plot", *extra]
    return main(argv)


def test_search_writes_the_run_directory(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # 16 of the 40 images: one batch of 8 per half an epoch (what is checked is per epoch; the
    # whole-set default is searched by tests/test_nas_report.py's study)
    assert search(data, out, "--hb-init", "--epochs", "2", "--plot", "--limit-images", "16") == 0
    genotype = load_genotype(out / "genotype.json")
    assert genotype.space == "heavyball"
    assert all(len(node) == 3 for node in genotype.normal)  # HB: every edge kept
    rows = read_metrics(out)
    assert [r["epoch"] for r in rows] == [1.0, 2.0] and rows[-1]["genotype"] == genotype
    assert (out / "metrics.csv").read_text().splitlines()[0] == ",".join(METRICS_HEADER)
    assert rows[0]["lr"] == pytest.approx(0.025) and rows[1]["lr"] == pytest.approx(0.0125)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert summary["options"]["hb_init"] is True and summary["options"]["arch_betas"] == [
        0.5,
        0.999,
    ]
    assert summary["dataset"]["weight_half"] == 8 and summary["dataset"]["architecture_half"] == 8
    assert summary["dataset"]["test_set_used"] is False
    assert summary["search_cost"]["unit"] == "CPU-hours" and summary["search_cost"]["hours"] > 0
    assert summary["parameters"]["architecture"] == 2 * 12 * 9
    assert summary["software"]["torch"] == torch.__version__
    assert (out / "checkpoint.pt").is_file() and (out / "cells.dot").is_file()


def test_agd_second_order_runs(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "agd"
    assert (
        search(data, out, "--order", "2", "--epochs", "1", "--limit-images", "16", space="agd") == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert all(len(node) == 2 for node in load_genotype(out).normal)
    assert summary["architecture_weights"]["edge_normal"] is not None
    assert summary["dataset"]["weight_half"] == 8


def test_resume_continues_bit_exactly(
    data: Path, agd_run: Path, tmp_path: Path, monkeypatch
) -> None:
    straight, resumed = agd_run, tmp_path / "resumed"
    import derive.nas.search as search_module

    original = search_module.search_epoch

    def interrupted(*args, **kwargs):
        if args[6] == 2:  # the epoch argument
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(search_module, "search_epoch", interrupted)
    assert search(data, resumed, *AGD_RUN, space="agd") == 130
    assert [r["epoch"] for r in read_metrics(resumed)] == [1.0]
    monkeypatch.setattr(search_module, "search_epoch", original)
    assert search(data, resumed, *AGD_RUN, "--resume", space="agd") == 0
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(resumed / "checkpoint.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["arch_batches"] == b["arch_batches"]
    for ra, rb in zip(read_metrics(straight), read_metrics(resumed), strict=True):
        assert {k: v for k, v in ra.items() if k != "seconds"} == {
            k: v for k, v in rb.items() if k != "seconds"
        }
    assert (straight / "genotype.json").read_text() == (resumed / "genotype.json").read_text()


def test_resume_refuses_other_settings(data: Path, agd_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    shutil.copytree(agd_run, out)
    assert search(data, out, *AGD_RUN, "--resume", "--seed", "3", space="agd") == 2
    assert "seed 0 (checkpoint) vs 3 (now)" in capsys.readouterr().err
    assert search(data, out, *AGD_RUN, space="agd") == 2  # neither --resume nor --force
    assert json.loads((out / "summary.json").read_text())["epochs_completed"] == 2  # untouched
    assert search(data, out, "--epochs", "1", "--limit-images", "16", "--force", space="agd") == 0
    assert json.loads((out / "summary.json").read_text())["epochs_completed"] == 1


@pytest.mark.parametrize(
    ("extra", "space", "message"),
    [
        ([], "nope", "unknown search space"),
        ([], "admm", "3 streams"),
        ([], "extragradient", "a T of a T"),
        (["--coef", "nu=0"], "qhm", "0 at these coefficients"),
        (["--cells", "2"], "darts", "--cells"),
        (["--channels", "5"], "darts", "even"),
        (["--ops", "sep_conv_3x3,conv_9x9"], "darts", "unknown operation"),
        (["--hb-init"], "agd", "heavy-ball space"),
        (["--algo-init"], "agd", "no fixed coefficient"),
        (["--hb-init", "--algo-init"], "heavyball", "exclude each other"),
        (["--image-size", "10"], "darts", "--image-size"),
        (["--limit-images", "1000"], "darts", "only 40 images"),
        (["--order", "3"], "darts", "expected 1 or 2"),
        (["--train-portion", "1.5"], "darts", "--train-portion"),
        (["--coef", "beta=3"], "heavyball", "beta must be <= 1"),
        (["--batch-size", "1"], "darts", "--batch-size"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    data: Path, tmp_path: Path, capsys, extra: list[str], space: str, message: str
) -> None:
    out = tmp_path / "never"
    assert search(data, out, *extra, space=space) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_missing_data_exits_2(tmp_path: Path, capsys) -> None:
    assert search(tmp_path / "nothing", tmp_path / "out") == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_show_prints_the_derived_cell(capsys) -> None:
    assert main(["nas", "search", "--space", "hb", "--show"]) == 0
    text = capsys.readouterr().out
    assert "x_0 = ō₁(x₋₁) + ō₂(x₋₁) + ō₃(x₋₂)" in text and "zₖ₊₁ = T(zₖ) + β·zₖ − β·zₖ₋₁" in text
    assert main(["nas", "search", "--space", "agd", "--show", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["algorithm"] == "nesterov2" and shown["edge_normalisation"] is True
    assert len(shown["cell_edges"]) == 14


def test_show_checks_and_prints_the_start(capsys) -> None:
    assert main(["nas", "search", "--space", "hb", "--hb-init", "--show"]) == 0
    text = capsys.readouterr().out  # SCIS (18): x_{t-1} at +1, x_{t-2} at -1
    assert "zₖ at c = 1: skip_connect 1 − neg_skip_connect 0" in text
    assert "zₖ₋₁ at c = -1: skip_connect 0 − neg_skip_connect 1" in text
    assert main(["nas", "search", "--space", "hb", "--algo-init", "--show"]) == 0
    assert "zₖ at c = 0.3: skip_connect 0.65 − neg_skip_connect 0.35" in capsys.readouterr().out
    assert main(["nas", "search", "--space", "agd", "--hb-init", "--show"]) == 2
    assert "--hb-init needs the heavy-ball space" in capsys.readouterr().err


def test_cli_bounds_agree_with_the_library() -> None:
    from derive.cli import nas_search
    from derive.nas import searchdata

    assert nas_search.IMAGE_SIZES == searchdata.IMAGE_SIZES


def test_search_then_network_then_train_end_to_end(
    data: Path, agd_run: Path, tmp_path: Path
) -> None:
    """The NAS pipeline: genotype.json → `derive nas network` → `derive train` (skipped until the
    evaluation half, `derive nas network`, is on this branch)."""
    import importlib.util

    if importlib.util.find_spec("derive.nas.network") is None:
        pytest.skip("derive nas network (derive/nas/network.py) is not on this branch yet")
    nets = tmp_path / "nets"
    argv = ["-q", "nas", "network", str(agd_run / "genotype.json"), "--out", str(nets)]
    assert main([*argv, "--channels", "4", "--cells", "3"]) == 0
    (model,) = sorted(nets.glob("*.py"))
    train = ["-q", "train", str(model), "--dataset", "cifar10", "--data-dir", str(data)]
    train += ["--out", str(tmp_path / "train"), "--epochs", "1", "--batch-size", "16"]
    assert main(train) == 0
    assert (tmp_path / "train" / "metrics.csv").is_file()
