"""`derive simulate`: the networks it trains, seeding, exact MSE, output files, CLI errors.

Every run here is tiny (dimension 6-8, a few hundred samples, depths 2-3, a few epochs).
"""

from __future__ import annotations

import csv
import json
import math
import shlex
import struct

import numpy as np
import pytest
import torch

from derive.cli import build_parser, main
from derive.codegen.loader import load_generated
from derive.errors import UserError
from derive.experiments.simulation.config import ACTIVATIONS, QUICK, SimulationConfig, config_seed
from derive.experiments.simulation.run import (
    build_network,
    evaluate_mse,
    make_data,
    run_simulation,
    seeded,
    train_run,
)

TINY = {"samples": 64, "dim": 6, "depths": (2, 3), "epochs": 6}


def _cfg(**options: object) -> SimulationConfig:
    """A tiny config; `options` override TINY."""
    return SimulationConfig(**{**TINY, **options})


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


def _weights(model: torch.nn.Module) -> list[np.ndarray]:
    return [_np(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)]


@pytest.fixture
def no_png(monkeypatch):
    """The run as on a machine without matplotlib (no simulation.png: drawing it costs more than
    these tiny runs); for the tests that read only the data files and the table."""
    import derive.experiments.simulation.plot as simplot

    def no_matplotlib(*args, **kwargs):
        raise UserError("the simulation plot needs matplotlib")

    monkeypatch.setattr(simplot, "plot_simulation", no_matplotlib)


# --- the networks ---------------------------------------------------------------------------------


def test_networks_are_the_papers_recurrences_with_their_own_weights():
    """GD (7), HB (10) with β = 0.3, ADMM (13) and AGD (11), recomputed in numpy from the network's weights."""
    config = _cfg()
    z0 = torch.randn(5, 6, dtype=torch.float64)
    depth = 3

    gd = build_network(config, "gd", depth).double()
    z = _np(z0)
    for w in _weights(gd):
        z = _sigmoid(z @ w.T)
    np.testing.assert_allclose(_np(gd(z0)), z, rtol=1e-12)

    hb = build_network(config, "heavyball", depth).double()
    prev, z = _np(z0), _np(z0)
    for w in _weights(hb):
        prev, z = z, _sigmoid(z @ w.T) + 0.3 * (z - prev)
    np.testing.assert_allclose(_np(hb(z0)), z, rtol=1e-12)

    admm = build_network(config, "admm", depth).double()
    zp, z, mu = _np(z0), _np(z0), np.zeros_like(_np(z0))
    for w in _weights(admm):
        zp_next = 0.5 * _sigmoid(zp @ w.T) + 0.5 * z - 0.5 * mu
        z_next = 0.5 * _sigmoid(z @ w.T) + 0.5 * zp_next + 0.5 * mu
        mu = zp_next - z_next + mu
        zp, z = zp_next, z_next
    np.testing.assert_allclose(_np(admm(z0)), z, rtol=1e-12)

    # AGD (11): θ₀ = 1, (1 − θₖ)/θₖ² = 1/θₖ₋₁², βₖ = θₖ(1 − θₖ₋₁)/θₖ₋₁ (β₀ = 0), z₋₁ = z₀
    agd = build_network(config, "nesterov", depth).double()
    theta = [1.0]
    for _ in range(depth):
        t2 = theta[-1] ** 2
        theta.append((math.sqrt(t2 * t2 + 4 * t2) - t2) / 2)
    beta = [0.0] + [theta[k] * (1 - theta[k - 1]) / theta[k - 1] for k in range(1, depth)]
    prev, z = _np(z0), _np(z0)
    for k, w in enumerate(_weights(agd)):
        prev, z = z, _sigmoid(((1 + beta[k]) * z - beta[k] * prev) @ w.T)
    np.testing.assert_allclose(_np(agd(z0)), z, rtol=1e-12)


def test_each_layer_has_its_own_weight_and_no_bias_by_default():
    config = _cfg()
    for algorithm in ("gd", "heavyball", "nesterov", "nesterov2", "admm"):
        model = build_network(config, algorithm, 3)
        weights = _weights(model)
        assert len(weights) == 3 and all(w.shape == (6, 6) for w in weights)
        assert not np.allclose(weights[0], weights[1])
        assert sum(p.numel() for p in model.parameters()) == 3 * 36
    with_bias = build_network(_cfg(bias=True), "gd", 3)
    assert sum(p.numel() for p in with_bias.parameters()) == 3 * (36 + 6)


def test_inits():
    """default: nn.Linear's U(±1/√dim); orthogonal: Wᵀ W = I; xavier: U(±√(6/(2·dim)))."""
    dim = 40
    base = {"samples": 8, "dim": dim, "depths": (2,), "epochs": 1}
    with seeded(1):
        default = _weights(build_network(SimulationConfig(**base), "gd", 2))[0]
    with seeded(1):
        ortho = _weights(build_network(SimulationConfig(**base, init="orthogonal"), "gd", 2))[0]
    with seeded(1):
        xavier = _weights(build_network(SimulationConfig(**base, init="xavier"), "gd", 2))[0]
    assert np.abs(default).max() <= 1 / math.sqrt(dim) and np.abs(default).max() > 0.9 / math.sqrt(
        dim
    )
    np.testing.assert_allclose(ortho.T @ ortho, np.eye(dim), atol=1e-5)
    bound = math.sqrt(6 / (2 * dim))
    assert bound * 0.9 < np.abs(xavier).max() <= bound


def test_activation_choices_are_known_to_the_generated_modules():
    for algorithm in ("gd_fc", "heavyball_fc", "nesterov_fc", "nesterov2_fc", "admm_fc"):
        assert set(ACTIVATIONS) <= set(load_generated(algorithm).ACTIVATIONS)


# --- data, seeding and the reported MSE -----------------------------------------------------------


def test_data_are_independent_standard_normal_draws_fixed_by_the_seed():
    z0, f = make_data(4000, 50, seed=3)
    assert z0.shape == f.shape == (4000, 50) and z0.dtype == torch.float32
    a, b = _np(z0).ravel(), _np(f).ravel()
    for x in (a, b):
        assert abs(x.mean()) < 0.01 and abs(x.var() - 1) < 0.02
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01  # independent draws, not f = g(z0)
    again = make_data(4000, 50, seed=3)
    assert torch.equal(again[0], z0) and torch.equal(again[1], f)
    assert not torch.equal(make_data(4000, 50, seed=4)[1], f)


def test_evaluate_mse_is_the_per_coordinate_mean_over_the_whole_set():
    z0, f = make_data(300, 7, seed=0)
    model = build_network(_cfg(dim=7), "heavyball", 2)
    expected = np.mean((_np(model(z0)) - _np(f)) ** 2)
    assert evaluate_mse(model, z0, f, chunk=128) == pytest.approx(expected, rel=1e-6)


def test_curve_starts_at_the_seeded_network_and_tracks_the_full_batch_loss():
    """Epoch 0 is the MSE of the network built from the run's own seed; in full-batch training the loss of
    epoch e+1's step is computed on the same weights as the evaluation after epoch e."""
    config = _cfg()
    z0, f = make_data(config.samples, config.dim, config.seed)
    result, curve = train_run(config, "nesterov2", 3, z0, f)
    with seeded(config_seed(config.seed, "nesterov2", 3)):
        fresh = build_network(config, "nesterov2", 3)
    assert curve[0].epoch == 0
    assert curve[0].train_mse == pytest.approx(np.mean((_np(fresh(z0)) - _np(f)) ** 2), rel=1e-6)
    assert [p.epoch for p in curve] == config.checkpoints() == list(range(7))
    for before, after in zip(curve, curve[1:], strict=False):
        assert after.batch_loss_mean == pytest.approx(before.train_mse, rel=1e-5)
    assert result.status == "completed" and result.epochs_completed == 6
    assert result.final_train_mse == curve[-1].train_mse < curve[0].train_mse


def test_same_seed_same_numbers_and_a_subset_gives_the_same_runs():
    config = _cfg(algorithms=("gd", "admm"), batch_size=16)
    first = run_simulation(config)
    again = run_simulation(config)
    assert [p.train_mse for p in first.curves] == [p.train_mse for p in again.curves]
    alone = run_simulation(_cfg(algorithms=("admm",), batch_size=16))
    assert [r.final_train_mse for r in alone.runs] == [
        r.final_train_mse for r in first.runs if r.algorithm == "admm"
    ]
    other = run_simulation(_cfg(algorithms=("gd", "admm"), batch_size=16, seed=1))
    assert other.runs[0].final_train_mse != first.runs[0].final_train_mse


def test_mini_batches_record_the_mean_batch_loss():
    config = _cfg(algorithms=("heavyball",), batch_size=10, epochs=2)
    assert config.steps_per_epoch == 7
    result = run_simulation(config)
    epoch1 = [p for p in result.curves if p.epoch == 1]
    assert all(p.batch_loss_mean is not None and p.batch_loss_mean != p.train_mse for p in epoch1)


def test_a_non_finite_loss_marks_the_run_diverged():
    config = _cfg()
    z0, f = make_data(config.samples, config.dim, 0)
    z0[3, 2] = float("nan")
    result, curve = train_run(config, "gd", 2, z0, f)
    assert result.status == "diverged" and result.epochs_completed == 0
    assert result.final_train_mse is None and [p.epoch for p in curve] == [0]


# --- output folder --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "out"
    torch.set_num_threads(1)
    code = main(
        ["-q", "simulate", "--samples", "48", "--dim", "5", "--depths", "2,3", "--epochs", "4",
         "--seed", "7", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    return out


def test_output_files_hold_every_run_and_checkpoint(sim_out):
    with open(sim_out / "curves.csv", newline="") as handle:
        curves = list(csv.DictReader(handle))
    assert list(curves[0]) == [
        "algorithm",
        "depth",
        "epoch",
        "train_mse",
        "batch_loss_mean",
        "seconds",
    ]
    runs = {(r["algorithm"], int(r["depth"])) for r in curves}
    assert runs == {
        (a, d) for a in ("gd", "heavyball", "nesterov", "nesterov2", "admm") for d in (2, 3)
    }
    assert len(curves) == 10 * 5  # epochs 0..4 for each run
    with open(sim_out / "final.csv", newline="") as handle:
        final = list(csv.DictReader(handle))
    last = {
        (r["algorithm"], int(r["depth"])): float(r["train_mse"])
        for r in curves
        if r["epoch"] == "4"
    }
    assert {(r["algorithm"], int(r["depth"])): float(r["final_train_mse"]) for r in final} == last
    data = json.loads((sim_out / "simulation.json").read_text())
    assert data["status"] == "completed" and data["config"]["seed"] == 7
    assert data["config"]["effective_batch_size"] == 48 and data["config"]["optimizer"] == "adam"
    z0, f = make_data(48, 5, 7)
    assert data["data"]["mean_f_squared"] == pytest.approx(float(np.mean(_np(f) ** 2)), rel=1e-12)
    assert data["data"]["best_constant_mse"] == pytest.approx(float(np.var(_np(f), axis=0).mean()))
    png = (sim_out / "simulation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] > 400


def _table(markdown: str) -> list[list[str]]:
    """The cells of the first table after '## Final train MSE' (header first)."""
    section = markdown.split("## Final train MSE", 1)[1].split("\n## ", 1)[0]
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def test_markdown_puts_ours_and_the_printed_numbers_in_their_own_columns(sim_out):
    text = (sim_out / "simulation.md").read_text()
    table = _table(text)
    head, rows = table[0], {int(r[0]): r for r in table[1:] if r[0].isdigit()}
    assert head[1:3] == ["ADMM (13)/(14): ours", "ADMM: printed"]
    agd2_ours, agd2_printed = head.index("AGD2 (12)/(13): ours"), head.index("AGD2: printed")
    # the printed Table B1 / Table 2 values, typed here from the papers
    assert rows[40][agd2_printed] == "0.99964" and rows[10][head.index("GD: printed")] == "1.00644"
    assert rows[40][agd2_ours] == "not run" and rows[30][1] == "not run"
    with open(sim_out / "final.csv", newline="") as handle:
        final = {
            (r["algorithm"], int(r["depth"])): float(r["final_train_mse"])
            for r in csv.DictReader(handle)
        }
    assert rows[2][agd2_ours] == f"{final[('nesterov2', 2)]:.5f}"
    assert rows[3][1] == f"{final[('admm', 3)]:.5f}"
    assert rows[2][agd2_printed] == "—"
    for needle in ("48 pairs", "adam, lr 0.001", "batch 48 (the whole training set", "bias off"):
        assert needle in text


def test_same_command_same_files(sim_out, tmp_path, no_png):
    data = json.loads((sim_out / "simulation.json").read_text())
    argv = shlex.split(data["command"])
    assert argv[:2] == ["derive", "simulate"]
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    assert main(["-q", *argv[1:]]) == 0
    for name in ("curves.csv", "final.csv"):
        ours = [r.split(",")[:4] for r in (sim_out / name).read_text().splitlines()]
        again = [r.split(",")[:4] for r in (tmp_path / "again" / name).read_text().splitlines()]
        assert ours == again


# --- command line ---------------------------------------------------------------------------------


def _args(*argv: str):
    return build_parser().parse_args(["simulate", *argv])


def test_quick_reduces_and_explicit_options_win():
    from derive.cli.simulate import build_config

    quick = build_config(_args("--quick"))
    assert (quick.samples, quick.epochs, quick.depths) == (
        QUICK["samples"],
        QUICK["epochs"],
        QUICK["depths"],
    )
    assert quick.dim == 100 and quick.algorithms == (
        "gd",
        "heavyball",
        "nesterov",
        "nesterov2",
        "admm",
    )
    assert build_config(_args("--quick", "--epochs", "7")).epochs == 7
    full = build_config(_args())
    assert (full.samples, full.dim, full.epochs, full.depths) == (
        10_000,
        100,
        1000,
        (10, 20, 30, 40),
    )
    assert (
        full.batch_size is None and full.optimizer == "adam" and full.lr == 1e-3 and not full.bias
    )
    assert build_config(_args("--algorithms", "hb,AGD2")).algorithms == ("heavyball", "nesterov2")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--algorithms", "newton"], "unknown algorithm 'newton'"),
        (["--depths", "0"], "positive integers"),
        (["--depths", "10,x"], "comma-separated integers"),
        (["--batch-size", "half"], "'full'"),
        (["--lr", "-1"], "positive number"),
        (["--lr", "nan"], "positive number"),
        (["--momentum", "1.5"], "momentum"),
        (["--optimizer", "lbfgs"], "invalid choice"),
        (["--algorithms", "gd,gd"], "twice"),
        (["--samples", "0"], "positive integer"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, needle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["simulate", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("derive: error:") and needle in err
    assert not out.exists()


def test_unwritable_output_is_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["simulate", "--epochs", "1", "--samples", "4", "--dim", "2", "--depths", "1",
                 "--out", str(blocker / "sub")]) == 2  # fmt: skip
    assert capsys.readouterr().err.count("\n") == 1
    assert blocker.read_text() == "x"


def test_config_validation_raises_user_error():
    with pytest.raises(UserError, match="--epochs"):
        SimulationConfig(epochs=0)
    with pytest.raises(UserError, match="--activation"):
        SimulationConfig(activation="cosine")
    with pytest.raises(UserError, match="--depths"):
        SimulationConfig(depths=(True,))


def test_help_explains_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    for needle in ("examples:", "--quick", "Adam", "full batch", "printed"):
        assert needle in text


def test_render_redraws_the_table_from_the_files(sim_out, tmp_path):
    from derive.experiments.simulation.files import render

    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("simulation.json", "curves.csv"):
        (copy / name).write_bytes((sim_out / name).read_bytes())
    render(copy)
    assert (copy / "simulation.md").read_text() == (sim_out / "simulation.md").read_text()
    assert (copy / "simulation.png").read_bytes()[:4] == b"\x89PNG"


def test_a_stopped_run_keeps_its_curves_and_says_so(tmp_path, monkeypatch):
    import derive.experiments.simulation.run as simulation

    real = simulation.train_run
    calls = []

    def stop_second(*args, **kwargs):
        calls.append(args[1:3])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(simulation, "train_run", stop_second)
    with pytest.raises(KeyboardInterrupt):
        run_simulation(_cfg(algorithms=("gd", "admm"), depths=(2,)), out_dir=tmp_path)
    data = json.loads((tmp_path / "simulation.json").read_text())
    assert data["status"] == "interrupted" and [r["algorithm"] for r in data["runs"]] == ["gd"]
    rows = (tmp_path / "curves.csv").read_text().splitlines()
    assert len(rows) == 1 + 7 and not (tmp_path / "simulation.md").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_missing_is_bad_input(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["simulate", "--device", "cuda", "--out", str(out)]) == 2
    assert "no CUDA device" in capsys.readouterr().err and not out.exists()


def test_resume_trains_only_the_missing_runs_and_gives_the_uninterrupted_table(
    tmp_path, monkeypatch, no_png
):
    import derive.experiments.simulation.run as simulation

    config = _cfg(algorithms=("gd", "heavyball", "admm"), depths=(2,))
    whole = tmp_path / "whole"
    run_simulation(config, out_dir=whole)

    stopped = tmp_path / "stopped"
    real = simulation.train_run
    trained: list[tuple[str, int]] = []

    def stop_third(*args, **kwargs):
        trained.append(args[1:3])
        if len(trained) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(simulation, "train_run", stop_third)
    with pytest.raises(KeyboardInterrupt):
        run_simulation(config, out_dir=stopped)
    trained.clear()
    run_simulation(config, out_dir=stopped, resume=True)
    assert trained == [("admm", 2)]  # gd and heavyball were not trained again

    def columns(folder, name, keep):
        return [r.split(",")[:keep] for r in (folder / name).read_text().splitlines()]

    assert columns(stopped, "final.csv", 6) == columns(whole, "final.csv", 6)
    assert columns(stopped, "curves.csv", 5) == columns(whole, "curves.csv", 5)
    assert json.loads((stopped / "simulation.json").read_text())["status"] == "completed"


def test_resume_refuses_other_settings_or_no_earlier_run(tmp_path, capsys, no_png):
    run_simulation(_cfg(algorithms=("gd",), depths=(2,)), out_dir=tmp_path / "a")
    with pytest.raises(UserError, match="epochs = 6, not 7"):
        run_simulation(_cfg(algorithms=("gd",), depths=(2,), epochs=7), tmp_path / "a", resume=True)
    argv = ["simulate", "--resume", "--epochs", "1", "--out", str(tmp_path / "empty")]
    assert main(argv) == 2
    assert "holds no simulation.json" in capsys.readouterr().err
    assert not (tmp_path / "empty").exists()


def test_a_blow_up_in_the_last_step_is_diverged_and_the_folder_stays_readable(tmp_path, no_png):
    from derive.experiments.simulation.files import read_simulation

    config = _cfg(algorithms=("gd",), depths=(2,), epochs=1, optimizer="sgd", lr=1e30,
                  activation="relu")  # fmt: skip
    run_simulation(config, out_dir=tmp_path)
    data, _ = read_simulation(tmp_path)  # strict JSON: no Infinity
    (run,) = data["runs"]
    assert run["status"] == "diverged" and run["final_train_mse"] is None
    assert "Infinity" not in (tmp_path / "simulation.json").read_text()
    assert "diverged (after 0 epochs)" in (tmp_path / "simulation.md").read_text()


def test_an_earlier_simulation_is_kept_unless_resume_or_force(tmp_path, capsys):
    out = tmp_path / "out"
    base = ["simulate", "--samples", "8", "--dim", "3", "--depths", "1", "--epochs", "1"]
    assert main(["-q", *base, "--algorithms", "gd,hb", "--out", str(out)]) == 0
    before = (out / "final.csv").read_text()
    assert main([*base, "--algorithms", "gd", "--out", str(out)]) == 2
    assert "already holds a simulation" in capsys.readouterr().err
    assert (out / "final.csv").read_text() == before
    (out / "simulation.png").write_bytes(b"stale")
    assert main(["-q", *base, "--algorithms", "gd", "--force", "--out", str(out)]) == 0
    assert (out / "final.csv").read_text().count("\n") == 2  # header and gd only
    assert (out / "simulation.png").read_bytes()[:4] == b"\x89PNG"
    assert main([*base, "--resume", "--force", "--out", str(out)]) == 2


def test_recorded_command_keeps_every_digit_of_the_rates(tmp_path):
    from derive.cli.simulate import build_config, command_for

    config = build_config(
        _args("--optimizer", "sgd", "--lr", "0.0012345678", "--momentum", "0.87654321")
    )
    argv = shlex.split(command_for(config, str(tmp_path)))
    again = build_config(build_parser().parse_args(argv[1:]))
    assert (again.lr, again.momentum) == (0.0012345678, 0.87654321)


def test_quick_label_states_the_values_used():
    from derive.experiments.simulation.table import settings_lines

    config = SimulationConfig(**{**TINY, "quick": True})
    data = {"config": config.to_dict(), "runs": [], "data": {}}
    (line,) = [x for x in settings_lines(data) if "--quick" in x]
    assert "samples 64" in line and "epochs 6" in line and "depths 2/3" in line


def test_ordering_joins_ties_at_the_printed_digits_and_names_unfinished_runs():
    from derive.experiments.simulation.table import ordering_table

    config = SimulationConfig(algorithms=("gd", "heavyball", "nesterov2", "admm"), depths=(40,))
    runs = [
        {"algorithm": "gd", "depth": 40, "status": "completed", "final_train_mse": 0.999513},
        {
            "algorithm": "heavyball",
            "depth": 40,
            "status": "completed",
            "final_train_mse": 0.9994196,
        },
        {
            "algorithm": "nesterov2",
            "depth": 40,
            "status": "completed",
            "final_train_mse": 0.9994195,
        },
        {"algorithm": "admm", "depth": 40, "status": "diverged", "final_train_mse": None},
    ]
    table = ordering_table({"config": config.to_dict(), "runs": runs})
    assert "| 40 | HB = AGD2 < GD (not ranked, ADMM: did not complete) |" in table
    assert "AGD2 < HB < GD < ADMM |" in table  # the printed row: 0.99964 < 1.00457 < ...


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda d: d.update(config={}), "malformed config"),
        (lambda d: d["config"].update(lr="fast"), "malformed config"),
        (lambda d: d["config"].update(algorithms=["newton"]), "malformed config"),
        (lambda d: d["runs"][0].update(depth="2"), "malformed depth"),
        (lambda d: d["runs"][0].pop("parameters"), "malformed parameters"),
        (lambda d: d.update(data=[]), "not a derive simulation summary"),
    ],
)
def test_a_damaged_simulation_json_is_one_line_exit_2(damage, needle, sim_out, tmp_path, capsys):
    for name in ("curves.csv", "simulation.json"):
        (tmp_path / name).write_bytes((sim_out / name).read_bytes())
    data = json.loads((tmp_path / "simulation.json").read_text())
    damage(data)
    (tmp_path / "simulation.json").write_text(json.dumps(data))
    argv = ["simulate", "--samples", "48", "--dim", "5", "--depths", "2,3", "--epochs", "4",
            "--seed", "7", "--resume", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_without_matplotlib_the_table_is_still_written(tmp_path, monkeypatch, caplog):
    import derive.experiments.simulation.plot as simplot

    def no_matplotlib(*args, **kwargs):
        raise UserError("the simulation plot needs matplotlib")

    monkeypatch.setattr(simplot, "plot_simulation", no_matplotlib)
    run_simulation(_cfg(algorithms=("gd",), depths=(2,)), out_dir=tmp_path)
    assert json.loads((tmp_path / "simulation.json").read_text())["status"] == "completed"
    text = (tmp_path / "simulation.md").read_text()
    assert "## Final train MSE" in text and "simulation.png" not in text
    assert not (tmp_path / "simulation.png").exists() and "needs matplotlib" in caplog.text
