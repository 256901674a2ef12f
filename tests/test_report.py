"""`derive report`: real tiny `derive train` runs (and copies relabelled as full-data or cifar-10-head
runs) collected into the results doc: aggregation, labelling, diverged runs, commands, bad input."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from train_fixtures import write_cifar10, write_model

from derive.cli import build_parser, main
from derive.experiments.cifar.report import build_report
from derive.experiments.cifar.runs import collect_runs, train_command
from derive.train.config import TrainConfig
from derive.train.loop import TrainingDiverged, run_training
from derive.train.runfiles import write_metrics


def _train(root: Path, name: str, model: Path, **options: object) -> Path:
    base = {"epochs": 2, "batch_size": 32, "progress_interval": 0, "eval_batch_size": 30}
    config = TrainConfig(
        model=str(model), data_dir=str(root / "data"), out=str(root / name), **{**base, **options}
    )
    run_training(config)
    return root / name


def _relabel(src: Path, dst: Path, accs: list[float], **changes: object) -> Path:
    """A copy of a real run with other test accuracies and summary fields ('a.b' keys)."""
    shutil.copytree(src, dst)
    rows = [dict(r) for r in csv.DictReader(open(src / "metrics.csv", newline=""))]
    rows = [{k: float(v) for k, v in r.items()} for r in rows]
    rows = [{**r, "epoch": int(r["epoch"]), "test_acc": a} for r, a in zip(rows, accs, strict=True)]
    write_metrics(dst, rows)
    summary = json.loads((dst / "summary.json").read_text())
    for key, value in changes.items():
        node = summary
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    (dst / "summary.json").write_text(json.dumps(summary, indent=2))
    return dst


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Real runs on 200/60 tiny images (two seeds, one without augmentation, one diverged), and
    relabelled copies: hbnet56 on full CIFAR-10 (two seeds, one diverged) and hbnet56 on cifar-10-head."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("report")
    write_cifar10(root / "data", per_file=40, n_test=60)
    tiny = write_model(root / "tiny.py")
    nan = write_model(root / "tiny_nan.py", "nan")
    made = {
        "s0": _train(root, "tiny-s0", tiny, seed=0),
        "s1": _train(root, "tiny-s1", tiny, seed=1),
        "noaug": _train(root, "tiny-noaug", tiny, seed=0, augment=False),
    }
    mp = pytest.MonkeyPatch()
    mp.setenv("DERIVE_TEST_NAN_AT", "10")  # 7 batches per epoch: diverges in epoch 2
    with pytest.raises(TrainingDiverged):
        _train(root, "tiny-nan", nan, seed=0)
    mp.undo()
    made["nan"] = root / "tiny-nan"
    full = {"dataset.train_size": 50_000, "dataset.test_size": 10_000, "options.model": "hbnet56"}
    made["full0"] = _relabel(made["s0"], root / "full" / "hb56-s0", [0.90, 0.9455], **full)
    made["full1"] = _relabel(
        made["s1"], root / "full" / "hb56-s1", [0.91, 0.9421], **full, **{"options.seed": 1}
    )
    made["full2"] = _relabel(
        made["s1"],
        root / "full" / "hb56-s2",
        [0.5, 0.2],
        **full,
        **{"options.seed": 2, "status": "diverged"},
    )
    head = {"dataset.train_size": 5_085, "dataset.test_size": 1_017, "options.model": "hbnet56"}
    made["head"] = _relabel(made["s0"], root / "head" / "hb56", [0.6, 0.6512], **head)
    torch.set_num_threads(before)
    return root, made


def _final_errors(folder: Path) -> float:
    """100 · (1 − test_acc) of the last metrics.csv row, read here with csv."""
    rows = list(csv.DictReader(open(folder / "metrics.csv", newline="")))
    return 100 * (1 - float(rows[-1]["test_acc"]))


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _rows(section: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def test_full_data_runs_sit_beside_the_printed_tables(runs):
    root, made = runs
    text = build_report([made["full0"], made["full1"], made["full2"]])
    head, *body = _rows(_section(text, "Full CIFAR, beside the papers"))
    assert len(body) == 1
    row = dict(zip(head, body[0], strict=True))
    assert row["Model"] == "hbnet56" and row["Data"] == "CIFAR-10(+)"
    errors = [100 * (1 - 0.9455), 100 * (1 - 0.9421)]  # the diverged seed 2 is not in the mean
    mean, std = float(np.mean(errors)), float(np.std(errors, ddof=1))
    assert row["Test error %: ours, mean ± std"] == f"{mean:.2f} ± {std:.2f} (n = 2)"
    assert row["not in mean"] == "1 diverged"
    # the printed numbers, typed from SCIS'23 Table 1 / ACML'18 Table 4 (HBNet n = 9, CIFAR-10+)
    assert row["printed SCIS'23 Table 1"] == "5.46" and row["printed ACML'18 Table 4"] == "5.46"
    assert row["Params: printed SCIS'23 Table 1"] == "0.85M"
    assert row["Seeds"] == "0, 1, 2" and row["Epochs"] == "2"
    assert row["Device"].startswith("cpu (")
    runs_rows = _rows(_section(text, "Runs"))
    statuses = {r[0].strip("`"): r[4] for r in runs_rows[1:]}
    assert statuses[str(made["full2"])] == "diverged"


def test_head_and_subsets_get_their_own_tables_with_no_paper_numbers(runs):
    root, made = runs
    text = build_report([made["head"], made["s0"], made["s1"], made["noaug"]])
    assert "No run on the full CIFAR-10/100 data" in _section(text, "Full CIFAR, beside the papers")
    head_section = _section(text, "CIFAR-10-head: the 10 % subset (not comparable with the papers)")
    header, row = _rows(head_section)
    assert not any("printed" in h for h in header)
    cells = dict(zip(header, row, strict=True))
    assert cells["Data"] == "CIFAR-10-head (10 % subset)" and cells["Model"] == "hbnet56"
    assert cells["Test error %: ours, mean ± std"] == f"{100 * (1 - 0.6512):.2f} (n = 1)"
    assert "5.46" not in head_section and "10.17" not in head_section

    header, *rows = _rows(_section(text, "Other data (subsets; not comparable with the papers)"))
    by_aug = {r[header.index("Augmentation")]: dict(zip(header, r, strict=True)) for r in rows}
    assert by_aug["on"]["Data"] == "CIFAR-10 subset (200 train / 60 test)"
    errors = [_final_errors(made["s0"]), _final_errors(made["s1"])]
    expected = f"{statistics.mean(errors):.2f} ± {np.std(errors, ddof=1):.2f} (n = 2)"
    assert by_aug["on"]["Test error %: ours, mean ± std"] == expected
    assert by_aug["on"]["Seeds"] == "0, 1"
    assert (
        by_aug["off"]["Test error %: ours, mean ± std"]
        == f"{_final_errors(made['noaug']):.2f} (n = 1)"
    )
    assert "batch_size=32" in by_aug["on"]["Recipe"]


def test_a_diverged_real_run_is_counted_and_listed(runs):
    root, made = runs
    summary = json.loads((made["nan"] / "summary.json").read_text())
    assert summary["status"] == "diverged"
    text = build_report([made["nan"], made["s0"]])
    header, *rows = _rows(_section(text, "Other data (subsets; not comparable with the papers)"))
    nan_row = next(dict(zip(header, r, strict=True)) for r in rows if r[0].endswith("tiny_nan.py"))
    assert nan_row["not in mean"] == "1 diverged"
    assert nan_row["Test error %: ours, mean ± std"] == "— (no completed run)"
    assert "1 diverged (counted, shown, not in the means)" in text
    listed = {r[0].strip("`"): r for r in _rows(_section(text, "Runs"))[1:]}
    assert listed[str(made["nan"])][4] == "diverged" and listed[str(made["nan"])][5] == "1/2"


def test_output_is_deterministic_and_runs_root_finds_the_same_runs(runs, tmp_path):
    root, made = runs
    a = build_report([made["full1"], made["head"], made["full2"], made["full0"]])
    b = build_report([made["full0"], made["full1"], made["full2"], made["head"], made["full0"]])
    assert a == b
    by_root = build_report([], [root / "full", root / "head"])
    assert by_root == a
    out = tmp_path / "docs" / "cifar.md"
    assert main(["report", str(made["full0"]), "--out", str(out)]) == 0
    first = out.read_bytes()
    assert main(["report", str(made["full0"]), "--out", str(out)]) == 0
    assert out.read_bytes() == first and b"derive report" in first


def test_commands_reproduce_each_runs_options(runs):
    root, made = runs
    for key in ("s1", "noaug"):
        run = collect_runs([made[key]])[0]
        argv = train_command(run).split()
        assert argv[:2] == ["derive", "train"]
        args = build_parser().parse_args(argv[1:])
        summary = json.loads((made[key] / "summary.json").read_text())["options"]
        for name in ("epochs", "batch_size", "seed", "augment", "lr", "eval_batch_size", "model"):
            assert getattr(args, name) == summary[name], name


def test_simulation_section(runs, tmp_path):
    from derive.experiments.simulation.config import SimulationConfig
    from derive.experiments.simulation.run import run_simulation

    root, made = runs
    sim = tmp_path / "sim"
    config = SimulationConfig(algorithms=("gd",), depths=(2,), samples=20, dim=3, epochs=2)
    run_simulation(config, out_dir=sim)
    text = build_report([made["s0"]], simulation=sim)
    section = _section(text, "Simulation (SCIS'23 Table B1 = ACML'18 Table 2)")
    final = float(next(csv.DictReader(open(sim / "final.csv")))["final_train_mse"])
    assert f"| 2 | {final:.5f} | — |" in section
    assert "| 40 | not run | 1.00653 |" in section


@pytest.mark.parametrize(
    "content",
    ["[" * 100_000 + "]" * 100_000, '{"x": ' + "9" * 5_000 + "}", "\xe9t\xe9"],
    ids=["deep", "huge-integer", "latin-1"],
)
def test_damaged_simulation_json_is_one_line(content, runs, tmp_path, capsys):
    root, made = runs
    sim = tmp_path / "sim"
    sim.mkdir()
    (sim / "simulation.json").write_bytes(content.encode("latin-1"))
    (sim / "curves.csv").write_text("")
    out = tmp_path / "cifar.md"
    assert main(["report", str(made["s0"]), "--simulation", str(sim), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "simulation.json" in err and "internal error" not in err
    assert not out.exists()


def _broken(tmp_path: Path, made: dict[str, Path]) -> dict[str, Path]:
    cases = {}
    cases["missing"] = tmp_path / "nope"
    cases["empty"] = tmp_path / "empty"
    cases["empty"].mkdir()
    bad_metrics = shutil.copytree(made["s0"], tmp_path / "bad-metrics")
    (bad_metrics / "metrics.csv").write_text("epoch,train_loss\n1,2\n")
    cases["bad-metrics"] = bad_metrics
    bad_row = shutil.copytree(made["s0"], tmp_path / "bad-row")
    with open(bad_row / "metrics.csv", "a") as handle:
        handle.write("3,x,0.5,1,0.5,0.1,1.0\n")
    cases["bad-row"] = bad_row
    bad_json = shutil.copytree(made["s0"], tmp_path / "bad-json")
    (bad_json / "summary.json").write_text("{not json")
    cases["bad-json"] = bad_json
    no_summary = shutil.copytree(made["s0"], tmp_path / "no-summary")
    (no_summary / "summary.json").unlink()
    cases["no-summary"] = no_summary
    wrong = shutil.copytree(made["s0"], tmp_path / "wrong-field")
    data = json.loads((wrong / "summary.json").read_text())
    data["options"]["epochs"] = "two"
    (wrong / "summary.json").write_text(json.dumps(data))
    cases["wrong-field"] = wrong
    return cases


@pytest.mark.parametrize(
    "case", ["missing", "empty", "bad-metrics", "bad-row", "bad-json", "no-summary", "wrong-field"]
)
def test_bad_run_folder_is_one_line_exit_2_and_nothing_written(case, runs, tmp_path, capsys):
    root, made = runs
    bad = _broken(tmp_path, made)[case]
    out = tmp_path / "out" / "cifar.md"
    assert main(["report", str(made["s0"]), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1
    assert not out.exists() and not out.parent.exists()


def test_other_bad_input(runs, tmp_path, capsys):
    root, made = runs
    out = tmp_path / "cifar.md"
    out.write_text("keep")
    for argv in (
        ["report", "--out", str(out)],  # no runs at all
        ["report", "--runs-root", str(tmp_path / "nothing-here"), "--out", str(out)],
        ["report", str(made["s0"]), "--simulation", str(tmp_path), "--out", str(out)],
        ["report", str(made["s0"]), "--out", str(tmp_path)],  # a folder
    ):
        assert main(argv) == 2, argv
        assert capsys.readouterr().err.count("\n") == 1
    assert out.read_text() == "keep"


def test_a_copied_run_shows_its_repeated_seed_and_odd_summary_fields_do_not_crash(runs, tmp_path):
    root, made = runs
    copy = _relabel(made["s0"], tmp_path / "copy", [0.5, 0.5], device="gpu?", software=[1])
    text = build_report([made["s0"], copy])
    header, *rows = _rows(_section(text, "Other data (subsets; not comparable with the papers)"))
    row = dict(zip(header, rows[0], strict=True))
    assert row["Seeds"] == "0, 0"  # two runs, one seed: not two samples
    assert row["Test error %: ours, mean ± std"].endswith("(n = 2)")
    assert "| ? | ? |" in text  # the copy's device and torch version are unknown


def test_command_keeps_every_digit_of_a_float_option(runs, tmp_path):
    root, made = runs
    odd = _relabel(made["s0"], tmp_path / "odd", [0.5, 0.5], **{"options.lr": 0.0123456789})
    argv = train_command(collect_runs([odd])[0]).split()
    assert build_parser().parse_args(argv[1:]).lr == 0.0123456789
