"""`derive report --paired-tests`: exact paired tests of HBNet against ResNet, seed by seed.

The p-values the report prints are checked against a brute-force enumeration written here with
itertools over exact fractions read from the runs' metrics.csv text (no code of the report's), and
against values known by hand (all ten differences of one sign: p = 2/1024 for both tests).
"""

from __future__ import annotations

import csv
import itertools
import json
import random
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from train_fixtures import write_cifar10, write_model

from derive.cli import main
from derive.experiments.cifar.report import build_report
from derive.experiments.stats import sign_flip_p_value, sign_test_p_value
from derive.train.config import TrainConfig
from derive.train.loop import run_training
from derive.train.runfiles import write_metrics

HEAD = {"dataset.train_size": 5_085, "dataset.test_size": 1_017}
RESNET_ARGS = {
    "depth": 32,
    "coefficients": {"beta1": 1.0, "beta2": 0.0},
    "modes": {"beta2": "pruned"},
}
HBNET_ARGS = {
    "depth": 32,
    "coefficients": {"beta1": 1, "beta2": -1},
}  # ints as --model-arg parses 1

# Final test accuracies per seed 0-9: ResNet-20, HBNet-20 (mixed signs, ties of |sums| on purpose),
# and ResNet-32 / HBNet-32 with HBNet better at every seed.
R20 = ["0.60", "0.61", "0.62", "0.60", "0.63", "0.61", "0.59", "0.64", "0.60", "0.62"]
H20 = ["0.61", "0.61", "0.64", "0.59", "0.64", "0.63", "0.60", "0.63", "0.62", "0.62"]
R32 = ["0.60", "0.61", "0.62", "0.60", "0.63", "0.61", "0.59", "0.64", "0.60", "0.62"]
H32 = ["0.605", "0.62", "0.625", "0.61", "0.64", "0.615", "0.6", "0.65", "0.601", "0.63"]


def _relabel(src: Path, dst: Path, last_acc: str, changes: dict[str, object]) -> Path:
    """A copy of a real run with another last test accuracy and summary fields ('a.b' keys)."""
    shutil.copytree(src, dst)
    rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(src / "metrics.csv"))]
    rows = [{**r, "epoch": int(r["epoch"])} for r in rows]
    rows[-1]["test_acc"] = float(last_acc)
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
def study(tmp_path_factory):
    """One real tiny run relabelled as 10 paired seeds of ResNet-20/HBNet-20 (zoo names) and of
    ResNet-32/HBNet-32 (a heavy-ball conv file with the papers' arguments), on cifar-10-head sizes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("paired")
    write_cifar10(root / "data", per_file=40, n_test=60)
    config = TrainConfig(
        model=str(write_model(root / "tiny.py")),
        data_dir=str(root / "data"),
        out=str(root / "tiny"),
        epochs=2,
        batch_size=32,
        progress_interval=0,
        eval_batch_size=30,
    )
    run_training(config)
    torch.set_num_threads(before)
    runs = root / "runs"
    for seed in range(10):
        for name, accs in (("resnet20", R20), ("hbnet20", H20)):
            changes = {**HEAD, "options.model": name, "options.seed": seed}
            _relabel(root / "tiny", runs / f"{name}-s{seed}", accs[seed], changes)
        for name, accs, args in (("resnet32", R32, RESNET_ARGS), ("hbnet32", H32, HBNET_ARGS)):
            changes = {
                **HEAD,
                "options.model": "frozen/heavyball_conv.py",
                "options.model_args": args,
                "options.seed": seed,
            }
            _relabel(root / "tiny", runs / f"{name}-s{seed}", accs[seed], changes)
    return root, runs


def _paired_rows(text: str) -> dict[str, list[str]]:
    """The rows of the cifar-10-head section's paired table, by pair name."""
    section = text.split("## CIFAR-10-head", 1)[1].split("\n## ", 1)[0]
    table = section.split("Paired by seed", 1)[1]
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]
    return {row[0]: row for row in rows[1:]}


def _exact_differences(runs: Path, first: str, second: str) -> list[Fraction]:
    """Test error of `second` minus that of `first` per seed, 100 · (acc_first − acc_second), from
    the metrics.csv text as exact fractions."""

    def last_acc(folder: Path) -> Fraction:
        return Fraction(list(csv.DictReader(open(folder / "metrics.csv")))[-1]["test_acc"])

    return [
        100 * (last_acc(runs / f"{first}-s{s}") - last_acc(runs / f"{second}-s{s}"))
        for s in range(10)
    ]


def _brute_sign_flip(diffs: list[Fraction]) -> Fraction:
    """Share of the 2^n sign vectors whose |Σ s_i |d_i|| is at least |Σ d_i| (exact arithmetic)."""
    observed = abs(sum(diffs))
    hits = sum(
        abs(sum(s * abs(d) for s, d in zip(signs, diffs, strict=True))) >= observed
        for signs in itertools.product((1, -1), repeat=len(diffs))
    )
    return Fraction(hits, 2 ** len(diffs))


def _brute_sign_test(diffs: list[Fraction]) -> Fraction:
    """Share of the 2^m outcomes of the m non-zero signs whose negatives are as far from m/2 as observed."""
    signs = [d < 0 for d in diffs if d != 0]
    m, k = len(signs), sum(signs)
    hits = sum(abs(2 * sum(v) - m) >= abs(2 * k - m) for v in itertools.product((0, 1), repeat=m))
    return Fraction(hits, 2**m)


def test_report_p_values_match_brute_force_enumeration(study):
    _, runs = study
    text = build_report(runs_roots=[runs], paired_tests=True)
    rows = _paired_rows(text)
    assert set(rows) == {"hbnet20 − resnet20", "hbnet32 − resnet32"}
    for pair, (first, second) in {
        "hbnet20 − resnet20": ("resnet20", "hbnet20"),
        "hbnet32 − resnet32": ("resnet32", "hbnet32"),
    }.items():
        diffs = _exact_differences(runs, first, second)
        row = rows[pair]
        assert row[-3] == f"{sum(d < 0 for d in diffs)} of 10"
        assert row[-2] == f"{float(_brute_sign_flip(diffs)):.3g}"
        assert row[-1] == f"{float(_brute_sign_test(diffs)):.3g}"


def test_one_sided_differences_give_the_hand_known_p_values(study):
    """HBNet-32 errs less at all 10 seeds: only the observed signs and their mirror are as extreme."""
    _, runs = study
    row = _paired_rows(build_report(runs_roots=[runs], paired_tests=True))["hbnet32 − resnet32"]
    assert row[-3] == "10 of 10"
    assert row[-2] == row[-1] == f"{2 / 1024:.3g}" == "0.00195"


def test_ties_of_the_sum_count_as_extreme_though_floats_round():
    """Differences whose |sums| tie exactly in real numbers but not in floating point."""
    diffs = [0.1, 0.2, -0.3, 0.1, 0.2, -0.3]
    exact = [Fraction(1, 10), Fraction(2, 10), Fraction(-3, 10)] * 2
    assert sign_flip_p_value(diffs) == float(_brute_sign_flip(exact))


def test_functions_match_brute_force_on_random_differences():
    rng = random.Random(7)
    for n in range(1, 11):
        ints = [rng.choice([-3, -2, -1, 0, 1, 2, 3]) for _ in range(n)]  # ties and zeros
        exact = [Fraction(v, 1017) * 100 for v in ints]
        floats = [float(v) for v in exact]
        assert sign_flip_p_value(floats) == pytest.approx(float(_brute_sign_flip(exact)), abs=1e-12)
        assert sign_test_p_value(floats) == pytest.approx(float(_brute_sign_test(exact)), abs=1e-12)
    assert sign_test_p_value([0.0, 0.0]) == 1.0
    with pytest.raises(ValueError):
        sign_flip_p_value([])


def test_without_the_flag_the_paired_table_keeps_its_columns(study):
    _, runs = study
    row = _paired_rows(build_report(runs_roots=[runs]))["hbnet20 − resnet20"]
    assert len(row) == 8 and row[-1].endswith("(n = 10)")


def test_cli_records_the_flag_in_the_doc_command(study, tmp_path, capsys):
    _, runs = study
    out = tmp_path / "study.md"
    assert (
        main(["-q", "report", "--runs-root", str(runs), "--paired-tests", "--out", str(out)]) == 0
    )
    capsys.readouterr()
    text = out.read_text()
    assert f"--runs-root {runs} --paired-tests --out {out}" in text
    assert "p, sign-flip permutation test (exact, two-sided)" in text


def test_depth_32_networks_from_a_model_file_are_named_in_the_head_table(study):
    _, runs = study
    section = build_report(runs_roots=[runs]).split("## CIFAR-10-head", 1)[1].split("\n## ", 1)[0]
    models = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")]
    for name in (
        "resnet20",
        "hbnet20",
        "resnet32 (heavyball_conv.py)",
        "hbnet32 (heavyball_conv.py)",
    ):
        assert name in models
