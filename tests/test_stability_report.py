"""The stability study's statistics and its doc, on hand-made run files; the committed doc rebuilt."""

from __future__ import annotations

import itertools
import json
import math
import shlex
import statistics
from pathlib import Path

import pytest
import torch

from derive.cli import main
from derive.experiments.stability.plan import reading_decision
from derive.experiments.stability.probe import FORMAT
from derive.experiments.stability.readout import read_study
from derive.experiments.stability.report import build_stability_report
from derive.experiments.stats import fisher_p, mean_std, permutation_p
from derive.train.runfiles import write_metrics, write_summary
from derive.train.steplog import write_steps

ROOT = Path(__file__).resolve().parents[1]


# --- statistics ----------------------------------------------------------------------------------


def test_fisher_exact_against_the_tea_tasting_tables():
    # 4 + 4 cups: the hypergeometric table is 1, 16, 36, 16, 1 (out of 70)
    assert fisher_p(4, 4, 0, 4) == pytest.approx(2 / 70)
    assert fisher_p(3, 4, 1, 4) == pytest.approx(34 / 70)
    assert fisher_p(2, 4, 2, 4) == pytest.approx(1.0)
    assert fisher_p(10, 10, 0, 10) == pytest.approx(2 / math.comb(20, 10))
    assert fisher_p(0, 0, 1, 3) is None


def _brute_force_p(a, b):
    """Every ordering of the pooled values (not only the splits): the same p, counted another way."""
    pooled, n1 = list(a) + list(b), len(a)
    observed = abs(statistics.fmean(a) - statistics.fmean(b))
    hits = total = 0
    for perm in itertools.permutations(pooled):
        total += 1
        d = abs(statistics.fmean(perm[:n1]) - statistics.fmean(perm[n1:]))
        hits += d >= observed - 1e-12
    return hits / total


def test_permutation_p_against_brute_force():
    for a, b in (
        ([1.0, 5.0, 2.0], [7.0, 8.0, 3.0, 9.0]),
        ([2.0, 2.0], [2.0, 3.0, 1.0]),
        ([0.3], [0.1, 0.2, 0.9]),
    ):
        assert permutation_p(a, b) == pytest.approx(_brute_force_p(a, b))
    separated = permutation_p([float(i) for i in range(10)], [float(i) + 100 for i in range(10)])
    assert separated == pytest.approx(2 / math.comb(20, 10))
    assert permutation_p([], [1.0]) is None


def test_mean_std():
    assert mean_std([1.0, 2.0, 4.0]) == (
        pytest.approx(7 / 3),
        pytest.approx(statistics.stdev([1, 2, 4])),
    )
    assert mean_std([3.0]) == (3.0, None) and mean_std([]) == (None, None)


# --- the doc from hand-made runs -----------------------------------------------------------------


def _run(
    study: Path,
    arm: str,
    model: str,
    seed: int,
    losses: list[float],
    epoch_losses: list[float],
    warm=0,
    status="completed",
    grad_scale=1.0,
):
    folder = study / "runs" / f"{arm}-s{seed}"
    folder.mkdir(parents=True)
    n = len(losses)
    lr = [0.01 if i < warm else 0.1 for i in range(n)]
    rows = torch.tensor(
        [
            [i + 1, 1 + i * len(epoch_losses) // n, losses[i], 0.1, lr[i], grad_scale * (2.0 + i)]
            for i in range(n)
        ],
        dtype=torch.float64,
    )
    write_steps(folder, rows)
    write_metrics(
        folder,
        [
            {
                "epoch": e,
                "train_loss": v,
                "train_acc": 0.1,
                "test_loss": v,
                "test_acc": 0.1 + 0.05 * e,
                "lr": 0.1,
                "seconds": 10.0,
            }
            for e, v in enumerate(epoch_losses, start=1)
        ],
    )
    write_summary(
        folder,
        {
            "status": status,
            "options": {
                "model": model,
                "seed": seed,
                "epochs": 2,
                "lr": 0.1,
                "warmup_steps": 400 if warm else 0,
            },
            "device": {
                "name": "cpu (test, 1 threads)",
                "precision": "fp32",
                "memory_format": "channels_last",
            },
        },
    )


def _study(tmp_path: Path) -> Path:
    study = tmp_path / "study"
    # steps 1..100: peak over steps 1..80 only (the 9.0 at step 90 must not count)
    base = [2.3] * 100
    for seed, (peak, e2) in enumerate([(7.0, 2.25), (6.0, 2.30), (3.0, 2.10)]):
        losses = list(base)
        losses[4] = peak
        losses[89] = 9.0
        _run(study, "resnet110", "resnet110", seed, losses, [3.0, e2])
        hb = list(base)
        hb[0] = 2.5 + 0.1 * seed
        _run(study, "hbnet110", "hbnet110", seed, hb, [2.28, 2.0 + 0.1 * seed])
        _run(study, "resnet110-warmup", "resnet110", seed, list(base), [2.29, 2.15], warm=30 + seed)
    probe = {
        "format": FORMAT,
        "seed": 0,
        "steps": 3,
        "blocks": [[1, 1], [1, 2], [2, 1], [2, 2], [3, 1], [3, 2]],
        "z_std": [[1, 2, 3, 4, 5, 6], [1, 1, 1, 1, 1, 1], [2, 3, 4, 5, 6, 7]],
        "logit_std": [1.5, 1.0, 1.0],
        "loss": [3.5, 3.0, 2.9],
        "grad_norm": [1.0, 1.0, 1.0],
        "lr": [0.1, 0.1, 0.1],
        "max_loss_difference_to_steps_csv": 4e-7,
    }
    (study / "probes").mkdir()
    (study / "probes" / "resnet110-s0.json").write_text(json.dumps(probe))
    return study


def test_figures_of_each_run_follow_the_stated_criteria(tmp_path):
    runs, probes = read_study(_study(tmp_path))
    res = [r for r in runs if r.arm.name == "resnet110"]
    assert [r.peak_loss for r in res] == [7.0, 6.0, 3.0] and [r.peak_step for r in res] == [5, 5, 5]
    assert [r.spiked for r in res] == [True, True, False]  # above 2 ln 10 = 4.61
    assert [r.failed for r in res] == [True, True, False]  # epoch-2 loss above 2.2
    assert [r.max_grad_norm for r in res] == [81.0] * 3  # 2 + i over steps 1..80
    warm = [r for r in runs if r.arm.name == "resnet110-warmup"]
    assert [r.warmup_steps_taken for r in warm] == [30, 31, 32]
    assert set(probes) == {"resnet110-s0"}
    (tmp_path / "study" / "runs" / "hbnet20-s0").mkdir()  # just started: no summary.json yet
    assert len(read_study(tmp_path / "study")[0]) == len(runs)


def test_doc_numbers_sentences_and_determinism(tmp_path):
    study = _study(tmp_path)
    text = build_stability_report(study, "derive stability report X --out Y")
    assert text == build_stability_report(study, "derive stability report X --out Y")
    assert text.split("```")[1].strip() == "derive stability report X --out Y"
    assert "9 of the 166 planned runs are in" in text and "not complete" in text
    peaks = [7.0, 6.0, 3.0]
    row = next(line for line in text.splitlines() if line.startswith("| ResNet-110 | 3 |"))
    assert f"{statistics.fmean(peaks):.2f} ± {statistics.stdev(peaks):.2f}" in row
    assert row.endswith("| 2/3 | 2/3 |")
    assert "ResNet failed to learn in 2 of 3 runs and HBNet in 0 of 3" in text
    assert f"Fisher p = {fisher_p(2, 3, 0, 3):.2g}" in text
    # p = 0.1 at best with 3 + 3 seeds: nothing is "clear"
    assert "**The claim is not shown here at depth 110**" in text
    assert "lasted 31 ± 1 steps" in text
    probe_row = next(line for line in text.splitlines() if line.startswith("| ResNet-110 | 0 |"))
    assert "| 2.00 / 4.00 / 6.00 | 3.00 / 5.00 / 7.00 | 6.00 | 1.50 | 3.50 |" in probe_row
    assert "| `resnet110-s0` | completed | 100 | 2.30 | 7.00 (5) | 81.0 | 3.000 / 2.250 |" in text
    assert "**Depth 164" not in text and "HBNet-164" not in text  # no pre-activation runs: no claim


def test_doc_on_the_preactivation_pair(tmp_path):
    study = _study(tmp_path)
    for seed in range(3):
        spiky = [2.3] * 100
        spiky[2] = 5.0 + seed  # above 4.61: a spike in each run
        _run(study, "preresnet164", "preresnet164", seed, spiky, [2.4, 2.25 - 0.1 * seed])
        _run(study, "prehbnet164", "prehbnet164", seed, [2.3] * 100, [2.2, 2.1], grad_scale=10.0)
    probe = json.loads((study / "probes" / "resnet110-s0.json").read_text())
    (study / "probes" / "preresnet164-s0.json").write_text(json.dumps(probe))
    probe["z_std"][0][-1], probe["loss"][0] = 0.5, 2.4
    (study / "probes" / "prehbnet164-s0.json").write_text(json.dumps(probe))
    text = build_stability_report(study, "derive stability report X --out Y")
    assert "15 of the 166 planned runs are in" in text
    assert (
        "- at depth 164, pre-activation: std of the last block's output at initialisation "
        "ResNet 6.00, HBNet 0.50; std of the logits ResNet 1.50, HBNet 1.50 (the pre-activation "
        "head normalises with BN and ReLU before the pool, so the logits start small whatever the "
        "features' scale); loss of the first batch ResNet 3.50, HBNet 2.40." in text
    )
    row = next(line for line in text.splitlines() if line.startswith("| pre-act ResNet-164"))
    assert row.endswith("| 3/3 | 1/3 |")  # of the epoch-2 losses 2.25, 2.15, 2.05 only 2.25 > 2.2
    assert (
        "- **Depth 164, pre-activation bottleneck.** ResNet's loss spiked (above 4.61) in 3 of 3"
        in text
    )
    assert "Pre-activation ResNet-164 spiked in 3 of 3 runs and failed in 1 of 3" in text
    assert "(post-activation ResNet-110: spiked 2/3, failed 2/3)" in text
    # gradient norms 10 × (2 + i) against 2 + i over the same steps: exactly 10 times
    assert (
        "HBNet-164's largest gradient norm over the first 80 steps is 10 times ResNet-164's" in text
    )
    assert "| pre-act ResNet-164 (bottleneck) → pre-act HBNet-164 (bottleneck) |" in text
    assert "The deeper pre-activation ResNet" not in text  # 1/3 against 2/3: nothing clear


def test_doc_says_when_the_preactivation_block_removes_the_failures(tmp_path):
    study = tmp_path / "study"
    for seed in range(5):
        flat = [2.3] * 100
        _run(study, "resnet110", "resnet110", seed, flat, [2.35, 2.29])  # fails
        _run(study, "preresnet164", "preresnet164", seed, flat, [2.1, 1.80 + 0.01 * seed])
        _run(study, "prehbnet164", "prehbnet164", seed, flat, [2.1, 1.90 + 0.01 * seed])
    text = build_stability_report(study, "derive stability report X --out Y")
    # 0/5 against 5/5 failed, and five epoch-2 losses all above the other five: both 2 / C(10, 5)
    p = 2 / math.comb(10, 5)
    assert (
        f"The deeper pre-activation ResNet failed clearly less often than the post-activation "
        f"ResNet-110 (Fisher p = {p:.2g})" in text
    )
    assert (
        f"with pre-activation blocks HBNet learns clearly worse (epoch-2 train loss +0.10 against "
        f"ResNet-164's, p = {p:.2g})." in text
    )


def test_doc_names_the_choices_that_carry_the_instability(tmp_path):
    study = tmp_path / "study"

    def arm_runs(name: str, peaks: list[float], epoch2: float) -> None:
        for seed, peak in enumerate(peaks):
            losses = [2.3] * 100
            losses[3] = peak
            _run(study, name, "resnet56", seed, losses, [3.0, epoch2])

    arm_runs("resnet56", [20.0, 21.0, 22.0, 23.0, 24.0], 2.28)  # all fail (epoch 2 above 2.2)
    arm_runs("resnet56-projection", [5.0, 6.0, 7.0, 8.0], 2.28)  # lower peaks, still failing
    arm_runs("resnet56-torchconv", [20.2, 21.2, 22.2, 23.2], 2.0)  # peaks among them, none fails
    arm_runs("resnet56-torchfc", [20.5, 21.5, 22.5, 23.5], 2.28)  # no change
    text = build_stability_report(study, "derive stability report X --out Y")
    # 4 values below all 5 others: only that split of C(9, 4) is as extreme (the mirrored split,
    # the 4 largest against the rest, differs by less); 5/5 against 0/4 failed: 1 / C(9, 4) too
    separated = fisher = 1 / math.comb(9, 4)
    assert (
        "**Which choices carry the instability.** Projection shortcut: lower peak loss "
        f"(p = {separated:.2g}); PyTorch conv init: fewer failed runs, 0/4 against 5/5 "
        f"(Fisher p = {fisher:.2g}). No clear change in the peak loss or the failed count: "
        "PyTorch classifier init." in text
    )
    assert f"failed 5/5 → 0/4 (Fisher p = {fisher:.2g})." in text


def test_reading_decision_is_the_stated_rule():
    # "at most 1 of its 10 runs fails to learn": holds; more fail: does not; else still open
    for runs in range(12):
        for failed in range(runs + 1):
            expected = False if failed >= 2 else (True if runs >= 10 else None)
            assert reading_decision(failed, runs) is expected


def test_doc_gives_each_readings_verdict_by_the_rule(tmp_path):
    study = _study(tmp_path)  # HBNet-110: 0 of 3 failed; ResNet-110: 2 of 3
    # (arm, epoch-2 losses): above 2.2 is a failed run
    plan = {
        "hbnet110-zerostart": [2.0] * 9 + [2.25],  # 1 of 10 failed: holds
        "hbnet110-norelu": [2.0] * 8 + [2.3, 2.3],  # 2 of 10: does not hold
        "hbnet110-learnbeta": [2.3, 2.0, 2.3],  # 2 of 3 already: does not hold
        # hbnet110-allreadings: 4 runs, none failed: open, still running
        "hbnet110-allreadings": [2.0] * 4,
    }
    for name, epoch2 in plan.items():
        for seed, e2 in enumerate(epoch2):
            _run(study, name, "hbnet110", seed, [2.3] * 100, [2.28, e2])
    (study / "runs" / "hbnet110-allreadings-s4").mkdir()  # just started: not counted
    text = build_stability_report(study, "derive stability report X --out Y")
    section = text.split("## Also: HBNet-110 under the readings")[1].split("\n## ")[0]
    rows = {
        line.split(" | ")[0][2:]: line
        for line in section.splitlines()
        if line.startswith("| HBNet-110, ")
    }
    assert rows["HBNet-110, z₋₁ = 0"].endswith(
        f"| 10 | 0/10 | 1/10 | 0/3 ({fisher_p(0, 3, 1, 10):.2g}) | 2/3 ({fisher_p(2, 3, 1, 10):.2g}) | the claim holds |"
    )
    assert "| 10 | 0/10 | 2/10 |" in rows["HBNet-110, no ReLU after the sum"]
    assert rows["HBNet-110, no ReLU after the sum"].endswith("| the claim does not hold |")
    assert "| 3 of 10, decided |" in rows["HBNet-110, learnable β₂"]
    assert (
        "(n = 3 of 10, decided: the other seeds cannot change the verdict); more than 1" in section
    )
    assert rows["HBNet-110, learnable β₂"].endswith("| the claim does not hold |")
    assert "| 4 of 10, still running | 0/4 | 0/4 |" in rows["HBNet-110, all three readings"]
    assert rows["HBNet-110, all three readings"].endswith("| open |")
    assert "(n = 4 of 10, still running); the verdict is open" in section
    assert (
        "HBNet-110 failed to learn in 0 of 3 runs and ResNet-110 failed to learn in 2 of 3"
        in section
    )
    assert (
        "**The papers' claim holds at depth 110 under: z₋₁ = 0; still open: all three readings.**"
        in section
    )
    # with no reading runs at all, every reading is shown, none dropped
    bare = build_stability_report(_study(tmp_path / "bare"), "derive stability report X --out Y")
    assert bare.count("No run finished yet (n = 0 of 10, still running).") == 4


def test_a_diverged_runs_probe_is_left_out(tmp_path):
    study = _study(tmp_path)
    losses = [2.3] * 14 + [float("nan")]
    _run(study, "hbnet110-allreadings", "hbnet110", 0, losses, [2.3], status="diverged")
    probe = json.loads((study / "probes" / "resnet110-s0.json").read_text())
    probe["logit_std"][2] = float("nan")  # what a probe of a run that diverged records
    (study / "probes" / "hbnet110-allreadings-s0.json").write_text(json.dumps(probe))
    runs, probes = read_study(study)
    assert [r.failed for r in runs if r.arm.name == "hbnet110-allreadings"] == [True]
    assert set(probes) == {"resnet110-s0"}
    text = build_stability_report(study, "derive stability report X --out Y")
    assert "| `hbnet110-allreadings-s0` | diverged |" in text
    assert "| HBNet-110, all three readings | 1 of 10, still running | " in text
    assert "Failed to learn in 1 of 1 runs (1 of them diverged: the loss became NaN" in text


def test_report_cli_writes_doc_and_figures_and_refuses_bad_input(tmp_path, capsys):
    study = _study(tmp_path)
    out = tmp_path / "doc.md"
    assert main(["stability", "report", str(study), "--out", str(out)]) == 0
    written = capsys.readouterr().out.split()
    assert written[0] == str(out) and out.read_text().startswith("# Depth stability")
    pngs = [Path(p) for p in written[1:]]
    assert {p.name for p in pngs} == {"losses.png", "gradnorms.png", "features.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert main(["stability", "report", str(tmp_path), "--out", str(tmp_path / "x.md")]) == 2
    assert "not a stability study folder" in capsys.readouterr().err
    (study / "runs" / "mystery-s0").mkdir()
    assert (
        main(["stability", "report", str(study), "--out", str(tmp_path / "x.md"), "--no-figures"])
        == 2
    )
    assert "not a run of the study" in capsys.readouterr().err and not (tmp_path / "x.md").exists()


def test_committed_stability_doc_is_rebuilt_exactly(tmp_path, monkeypatch, capsys):
    committed = ROOT / "docs" / "results" / "stability.md"
    if not committed.exists():
        pytest.skip("no committed docs/results/stability.md")
    argv = shlex.split(committed.read_text(encoding="utf-8").split("```", 2)[1].strip())
    assert argv[:3] == ["derive", "stability", "report"]
    out = tmp_path / "stability.md"
    argv[argv.index("--out") + 1] = str(out)
    monkeypatch.chdir(ROOT)  # the doc names its study folder relative to the repository root
    assert main(["-q", *argv[1:], "--no-figures"]) == 0
    capsys.readouterr()
    ours = out.read_text(encoding="utf-8").replace(str(out), "docs/results/stability.md")
    ours = ours.replace(" --no-figures", "", 1)
    assert ours == committed.read_text(encoding="utf-8")
