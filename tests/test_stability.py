"""`derive stability`: the study's plan, its runner (resume, skip, failures), the probe's hooks."""

from __future__ import annotations

import io
import json

import pytest
import torch
from train_fixtures import single_thread, write_cifar10  # noqa: F401

from derive.cli import main
from derive.codegen.loader import load_generated
from derive.experiments.stability.jobs import Job, StudySettings, plan_jobs, run_jobs
from derive.experiments.stability.plan import (
    ABLATION_ARMS,
    ALL_ARMS,
    DENSE_ARMS,
    MAIN_ARMS,
    PREACT_ARMS,
    READING_ARMS,
    Arm,
    arm,
)
from derive.experiments.stability.probe import block_hooks, probe_run, read_probe, write_probe
from derive.modelargs import collect
from derive.train.steplog import read_steps

TINY_RESNET = """
from derive.codegen.loader import load_generated


def create_model(num_classes=10):
    beta = {{"beta1": 1.0, "beta2": {beta2}}}
    return load_generated("heavyball_conv").cifar_resnet(depth=14, num_classes=num_classes,
                        coefficients=beta, widths=(4, 8, 8))
"""

TINY_DENSENET = """
from derive.codegen.loader import load_generated


def create_model(num_classes=10):
    return load_generated("nesterov2_conv").cifar_densenet(depth=10, growth=4,
                          num_classes=num_classes, modes={"beta": "pruned"})
"""


@pytest.fixture
def data(tmp_path):
    write_cifar10(tmp_path / "data", per_file=40, n_test=60)
    return tmp_path


def _train(root, model_text, out, *extra):
    model = root / f"{out}.py"
    model.write_text(model_text)
    argv = ["-q", "train", str(model), "--data-dir", str(root / "data"), "--out", str(root / out)]
    assert main([*argv, "--epochs", "1", "--batch-size", "32", "--log-steps", *extra]) == 0


def test_the_plan_is_every_arm_seed_by_seed_with_probes_after_their_runs(tmp_path):
    settings = StudySettings(data_dir="DATA", study_dir=str(tmp_path / "s"))
    arms = list(MAIN_ARMS + DENSE_ARMS + PREACT_ARMS + ABLATION_ARMS)
    jobs = plan_jobs(settings, arms, range(10), range(5), range(3))
    trains = [j for j in jobs if j.kind == "train"]
    paired = len(MAIN_ARMS) + len(DENSE_ARMS) + len(PREACT_ARMS)
    assert len(trains) == 10 * paired + 5 * len(ABLATION_ARMS)
    assert len(jobs) - len(trains) == 3 * len(arms)
    assert [j.arm.name for j in trains[: len(MAIN_ARMS)]] == [a.name for a in MAIN_ARMS]
    assert [j.seed for j in trains[: 2 * len(MAIN_ARMS)]] == [0] * 7 + [1] * 7
    # phases: main seeds 0-4, ablations 0-4, dense 0-4, main 5-9, dense 5-9, pre-activation 0-9
    phases = []
    for j in trains:
        key = (j.arm.group, j.seed < 5)
        if not phases or phases[-1] != key:
            phases.append(key)
    assert phases == [
        ("main", True),
        ("ablation", True),
        ("dense", True),
        ("main", False),
        ("dense", False),
        ("preact", True),
        ("preact", False),
    ]
    preact = [j for j in trains if j.arm.group == "preact"]
    assert [j.seed for j in preact] == [s for s in range(10) for _ in PREACT_ARMS]
    assert preact[0].argv[:2] == ["train", "preresnet164"]
    assert preact[0].argv[preact[0].argv.index("--epochs") + 1] == "2"
    for i, job in enumerate(jobs):
        if job.kind == "probe":
            assert jobs[i - 1].kind == "train" and jobs[i - 1].run_dir == job.run_dir
    argv = trains[0].argv
    assert argv[:2] == ["train", "resnet20"] and "--log-steps" in argv and "--resume" in argv
    assert argv[argv.index("--lr-gamma") + 1] == "1" and argv[argv.index("--epochs") + 1] == "2"
    dense = next(j for j in trains if j.arm.group == "dense")
    assert dense.argv[dense.argv.index("--epochs") + 1] == "1"
    warm = next(j for j in trains if j.arm.name == "resnet110-warmup")
    assert warm.argv[warm.argv.index("--warmup-factor") + 1] == "0.1"
    assert arm("resnet56-projection").options == ("--shortcut", "projection")


def test_the_readings_run_last_seed_by_seed_each_with_its_model_args(tmp_path):
    settings = StudySettings(data_dir="DATA", study_dir=str(tmp_path / "s"))
    arms = list(ALL_ARMS)
    trains = [
        j for j in plan_jobs(settings, arms, range(10), range(4), range(2)) if j.kind == "train"
    ]
    readings = trains[-10 * len(READING_ARMS) :]
    assert all(j.arm.group == "readings" for j in readings)
    assert not any(j.arm.group == "readings" for j in trains[: -len(readings)])
    assert [j.seed for j in readings[: 2 * len(READING_ARMS)]] == [0] * 4 + [1] * 4
    args = {j.arm.name: j.argv[j.argv.index("--seed") + 2 :] for j in readings if j.seed == 0}
    assert args["hbnet110-zerostart"][:2] == ["--model-arg", "stage_start=zero"]
    assert args["hbnet110-norelu"][:2] == ["--model-arg", "post_relu=false"]
    assert args["hbnet110-learnbeta"][:2] == ["--model-arg", "learn_beta2=true"]
    assert args["hbnet110-allreadings"][:6] == [
        *args["hbnet110-zerostart"][:2],
        *args["hbnet110-norelu"][:2],
        *args["hbnet110-learnbeta"][:2],
    ]
    for j in readings:  # the main arm's recipe and budget otherwise
        main_argv = next(t.argv for t in trains if t.arm.name == "hbnet110" and t.seed == j.seed)
        extra = list(j.arm.options)
        assert j.argv[:2] == ["train", "hbnet110"]
        cut = j.argv.index("--seed") + 2
        assert j.argv[:cut] + j.argv[cut + len(extra) :] == [
            a.replace("hbnet110-s", f"{j.arm.name}-s") for a in main_argv
        ]


def test_the_readings_model_args_build_the_networks_they_name():
    zoo = load_generated("heavyball_conv")

    def built(a: Arm):
        texts = [a.options[i + 1] for i, o in enumerate(a.options) if o == "--model-arg"]
        return zoo.hbnet110(**collect(texts))

    default = sum(p.numel() for p in zoo.hbnet110().parameters())
    learn = built(arm("hbnet110-learnbeta"))
    blocks = 3 * (110 - 2) // 6  # 18 blocks per stage
    assert sum(p.numel() for p in learn.parameters()) == default + blocks  # one β₂ per block
    # the same weights under another reading give another function: the keyword reached the model
    base = zoo.hbnet110().eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for name in ("hbnet110-zerostart", "hbnet110-norelu"):
        other = built(arm(name)).eval()
        other.load_state_dict(base.state_dict())
        with torch.no_grad():
            assert not torch.allclose(other(x), base(x))


def test_dry_run_and_bad_input(tmp_path, capsys):
    argv = ["stability", "run", "--data-dir", "d", "--out", str(tmp_path / "s"), "--dry-run"]
    assert main([*argv, "--arms", "hbnet20", "--seeds", "0-2,5", "--probe-seeds", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.startswith("to run  derive ") for line in lines)
    assert "stability probe" in lines[-1] and "hbnet20-s5" in lines[-1]
    for bad, message in (
        (["--seeds", "3-1"], "expected seeds like 0-9"),
        (["--arms", "resnet999"], "unknown arm"),
        (["--workers", "0"], "--workers: expected an integer >= 1"),
        (["--epochs", "301"], "--epochs: expected an integer >= 1 of at most 300"),
    ):
        assert main([*argv, *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert main([*argv, "--arms", "x" * 100_000 + ",y,z,u,v,w,q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 500 and "x…, y, z, u, v and 2 more" in err, err
    assert (
        main(["stability", "run", "--data-dir", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    )
    assert "cifar" in capsys.readouterr().err.lower() and not (tmp_path / "s").exists()


def _job(root, name, argv, kind="train", seed=0):
    run_dir = root / name
    return Job(
        kind,
        Arm(name, "tiny", "main", name),
        seed,
        argv,
        run_dir,
        run_dir / "summary.json" if kind == "train" else root / f"{name}.json",
        1,
        1.0,
        root / f"{name}.{kind}.log",
    )


def test_runner_runs_skips_and_reports_failures(data):
    model = data / "tiny.py"
    model.write_text(TINY_RESNET.format(beta2=-1.0))
    common = [
        "--data-dir",
        str(data / "data"),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--log-steps",
    ]
    good = [
        _job(
            data,
            f"r{s}",
            ["train", str(model), "--out", str(data / f"r{s}"), *common, "--seed", str(s)],
        )
        for s in (0,)
    ]
    probe = _job(
        data,
        "r0",
        ["stability", "probe", str(data / "r0"), "--steps", "2", "--out", str(data / "r0.json")],
        kind="probe",
    )
    # refused while parsing, before torch loads: the failure costs the child no start-up
    bad_argv = ["train", str(data / "missing.py"), "--out", str(data / "bad"), *common]
    bad = _job(data, "bad", [*bad_argv, "--batch-size", "0"])
    bad_probe = _job(
        data,
        "bad",
        ["stability", "probe", str(data / "bad"), "--out", str(data / "bad.json")],
        kind="probe",
    )
    stream = io.StringIO()
    failed = run_jobs([good[0], probe, bad, bad_probe], workers=2, stream=stream)
    text = stream.getvalue()
    assert failed == ["train bad-s0", "probe bad-s0"], text
    assert (
        "4 of 4 jobs to run" in text and "[3/4] " in text and "skipped (their run failed)" in text
    )
    assert all(j.done() for j in (good[0], probe)) and not bad.done()
    assert "--batch-size: expected a positive integer" in (data / "bad.train.log").read_text()
    again = io.StringIO()
    assert run_jobs([good[0], probe], stream=again) == []
    assert "0 of 2 jobs to run (2 already done)" in again.getvalue()


def test_probe_replays_the_run_and_measures_each_block(data):
    _train(
        data, TINY_RESNET.format(beta2=0.0), "res", "--warmup-steps", "2", "--warmup-factor", "0.5"
    )
    record = probe_run(data / "res", steps=3)
    logged = read_steps(data / "res")
    assert record["steps"] == 4 and record["blocks"] == [[s, k] for s in (1, 2, 3) for k in (1, 2)]
    assert record["max_loss_difference_to_steps_csv"] < 1e-5
    assert record["lr"] == pytest.approx([0.05, 0.05, 0.1, 0.1]) == [r["lr"] for r in logged[:4]]
    assert record["grad_norm"] == pytest.approx([r["grad_norm"] for r in logged[:4]], rel=1e-4)
    assert record["parts"] == ["stem", "stages.1", "stages.2", "stages.3", "head"]
    for total, parts in zip(record["grad_norm"], record["part_grad_norm"], strict=True):
        assert sum(v * v for v in parts) ** 0.5 == pytest.approx(total, rel=1e-5)  # parts cover all
    # step 1 independently: the stage outputs (each stage returns its last z) of the initial model
    from derive.experiments.stability.probe import config_of_run
    from derive.train.loop import build_model

    model = build_model(config_of_run(data / "res")).train()
    outputs = []
    for stage in model.stages:
        stage.register_forward_hook(lambda m, i, o: outputs.append(float(o.detach().std())))
    from derive.train.augment import BatchMaker, Normalizer
    from derive.train.data import channel_stats, load_cifar

    cifar = load_cifar("cifar10", str(data / "data"))
    batches = BatchMaker(
        torch.from_numpy(cifar.train_images),
        torch.from_numpy(cifar.train_labels),
        Normalizer(*channel_stats(cifar.train_images), torch.device("cpu")),
        config_of_run(data / "res").augment_options(),
    )
    x, _ = next(iter(batches.train_batches(32, 0, 1)))
    model(x)
    last_of_stage = [record["z_std"][0][i] for i in (1, 3, 5)]
    assert last_of_stage == pytest.approx(outputs, rel=1e-5)
    out = write_probe(data / "p" / "res.json", record)
    assert read_probe(out)["z_std"] == record["z_std"]  # JSON keeps every digit of a float


def test_probe_splits_dense_stages_into_their_layers(data):
    _train(data, TINY_DENSENET, "dense")
    from derive.experiments.stability.probe import config_of_run
    from derive.train.loop import build_model

    model = build_model(config_of_run(data / "dense")).train()
    sink: dict[int, float] = {}
    labels, handles = block_hooks(model, sink)
    units = []
    for stage in model.stages:
        for unit in getattr(stage, "units", []):  # DenseNet: z_{k+1} = T_k(...) exactly
            unit.register_forward_hook(lambda m, i, o: units.append(float(o.detach().std())))
    model(torch.randn(8, 3, 32, 32))
    assert labels == [(s, k) for s in (1, 2, 3) for k in (1, 2)]
    assert [sink[i] for i in range(len(labels))] == pytest.approx(units, rel=1e-5)
    for handle in handles:
        handle.remove()


def test_probe_cli_and_bad_input(data, capsys):
    _train(data, TINY_RESNET.format(beta2=-1.0), "hb")
    assert (
        main(
            [
                "-q",
                "stability",
                "probe",
                str(data / "hb"),
                "--steps",
                "2",
                "--out",
                str(data / "hb.json"),
            ]
        )
        == 0
    )
    assert json.loads((data / "hb.json").read_text())["steps"] == 3
    capsys.readouterr()
    assert (
        main(
            ["stability", "probe", str(data / "hb"), "--steps", "7", "--out", str(data / "x.json")]
        )
        == 2
    )
    assert "--steps must be between 1 and 6" in capsys.readouterr().err
    assert main(["stability", "probe", str(data / "nothing"), "--out", str(data / "x.json")]) == 2
    assert "not a derive train run" in capsys.readouterr().err and not (data / "x.json").exists()


@pytest.mark.parametrize("sub", ["run", "probe", "report"])
def test_help_of_each_subcommand_explains_every_option(sub, capsys):
    from derive.cli import build_parser

    with pytest.raises(SystemExit) as info:
        main(["stability", sub, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "derive stability " in text
    parser = build_parser()
    stability = next(a for a in parser._actions if a.dest == "command").choices["stability"]
    subparser = next(a for a in stability._actions if a.dest == "stability_command").choices[sub]
    for action in subparser._actions:
        assert action.help, action.dest
        for option in action.option_strings:
            assert option in text


def test_an_interrupted_study_stops_its_children(tmp_path, monkeypatch) -> None:
    """An interrupt of `derive stability run` stops every child with SIGTERM, even a child that
    ignores SIGINT (as the children of a background job do), and leaves none running."""
    import signal
    import subprocess
    import sys
    import time

    from derive.experiments.stability import jobs as stabrun

    children = []
    real_popen, real_sleep = subprocess.Popen, time.sleep
    deaf = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(120)"

    def popen(argv, **options):
        children.append(real_popen([sys.executable, "-c", deaf], **options))
        return children[-1]

    def interrupt(seconds: float) -> None:
        real_sleep(1.0)  # the child is up
        raise KeyboardInterrupt

    settings = StudySettings(data_dir="DATA", study_dir=str(tmp_path / "s"))
    job = plan_jobs(settings, [arm("resnet20")], [0], [], [])[0]
    monkeypatch.setattr(stabrun.subprocess, "Popen", popen)
    monkeypatch.setattr(stabrun.time, "sleep", interrupt)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_jobs([job], workers=1, stream=io.StringIO())
    assert len(children) == 1 and children[0].poll() == -signal.SIGTERM
    assert time.monotonic() - started < 30  # SIGTERM worked: no 60-s grace period, no kill needed
