"""The simulation of SCIS'23 appendix B.3 / ACML'18 §5.3: train the untied fc networks to fit random targets.

    from derive.experiments import SimulationConfig, run_simulation
    result = run_simulation(SimulationConfig(depths=(10,), epochs=20), out_dir="runs/sim")

Each (algorithm, depth) run builds `build_untied(dim, activation, depth, bias=..., **coefficients)` from
the generated module (`generated/<algo>_fc.py`), seeds its initialization and batch order from
(seed, algorithm, depth) only (so a subset of the runs gives the same numbers as the whole table), and
minimizes the mean squared error ‖f − Net(z₀)‖² / (samples · dim) (torch's MSELoss, the per-coordinate
mean, so predicting 0 scores mean(f²) ≈ 1). The training set's MSE is evaluated exactly (no_grad,
float64 sum) after the epochs listed by `SimulationConfig.checkpoints()`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from derive.codegen.loader import load_generated
from derive.devices import device_name
from derive.errors import UserError
from derive.experiments.simconfig import NETWORKS, SimulationConfig, config_seed
from derive.timefmt import time_left

log = logging.getLogger("derive.simulate")


@dataclass(frozen=True)
class CurvePoint:
    """The training set's MSE of one run after `epoch` epochs (0: at initialization)."""

    algorithm: str
    depth: int
    epoch: int
    train_mse: float  # whole training set, evaluated after the epoch
    batch_loss_mean: float | None  # mean of the epoch's mini-batch losses (None at epoch 0)
    seconds: float  # training seconds of this run so far


@dataclass
class RunResult:
    """One (algorithm, depth) run: its status, final MSE and cost."""

    algorithm: str
    depth: int
    status: str  # "completed" or "diverged" (a non-finite loss stopped it)
    epochs_completed: int
    final_train_mse: float | None
    parameters: int
    seconds: float
    compile_seconds: float = 0.0
    device: str = ""  # where it was trained (a resumed simulation may have moved)


@dataclass
class DataStats:
    """Reference values of the data that any honest reading of the table needs."""

    mean_f_squared: float  # the MSE of always predicting 0
    best_constant_mse: float  # the MSE of predicting each coordinate's sample mean of f
    mean_x0_squared: float


@dataclass
class SimulationResult:
    """Everything a run produced: the curves, one result per run, the data's reference values."""

    config: SimulationConfig
    data: DataStats
    runs: list[RunResult] = field(default_factory=list)
    curves: list[CurvePoint] = field(default_factory=list)
    device: str = ""
    wall_seconds: float = 0.0

    def final(self, algorithm: str, depth: int) -> RunResult | None:
        for run in self.runs:
            if (run.algorithm, run.depth) == (algorithm, depth):
                return run
        return None


def make_data(samples: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(z₀, f): two independent samples × dim float32 draws from N(0, I), z₀ first, one generator."""
    generator = torch.Generator().manual_seed(seed)
    z0 = torch.randn(samples, dim, generator=generator)
    f = torch.randn(samples, dim, generator=generator)
    return z0, f


def data_stats(f: torch.Tensor, z0: torch.Tensor) -> DataStats:
    f64 = f.double()
    return DataStats(
        mean_f_squared=float((f64**2).mean()),
        best_constant_mse=float(((f64 - f64.mean(0)) ** 2).mean()),
        mean_x0_squared=float((z0.double() ** 2).mean()),
    )


def build_network(config: SimulationConfig, algorithm: str, depth: int) -> nn.Module:
    """The untied network of `algorithm` from its generated module, initialized as config.init says.

    Uses the global torch RNG (nn.Linear draws from it): call it under `seeded(...)`.
    """
    spec = NETWORKS[algorithm]
    module = load_generated(spec.module)
    model = module.build_untied(
        config.dim, config.activation, depth, bias=config.bias, **dict(spec.coefficients)
    )
    if config.init != "default":
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                if config.init == "xavier":
                    nn.init.xavier_uniform_(layer.weight)
                else:
                    nn.init.orthogonal_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    return model


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with the global CPU torch RNG seeded, restoring the caller's RNG state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def evaluate_mse(
    model: Callable[[torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    f: torch.Tensor,
    chunk: int = 10_000,
) -> float:
    """The exact MSE over the whole set: float64 sum of squared errors / (samples · dim)."""
    total = torch.zeros((), dtype=torch.float64, device=f.device)
    with torch.no_grad():
        for start in range(0, z0.shape[0], chunk):
            out = model(z0[start : start + chunk])
            total += ((out.double() - f[start : start + chunk].double()) ** 2).sum()
    return float(total) / f.numel()


def _optimizer(config: SimulationConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, fused=True)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)


def train_run(
    config: SimulationConfig,
    algorithm: str,
    depth: int,
    z0: torch.Tensor,
    f: torch.Tensor,
    on_point: Callable[[CurvePoint], None] | None = None,
) -> tuple[RunResult, list[CurvePoint]]:
    """Train one network for config.epochs epochs; return its result and its curve."""
    seed = config_seed(config.seed, algorithm, depth)
    with seeded(seed):
        model = build_network(config, algorithm, depth).to(z0.device)
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = _optimizer(config, list(model.parameters()))
    order = torch.Generator().manual_seed(seed ^ 0x5EED)
    forward = torch.compile(model) if config.compile else model
    checkpoints = set(config.checkpoints())
    batch, n = config.effective_batch_size, config.samples
    curve: list[CurvePoint] = []
    label = f"{NETWORKS[algorithm].label} depth {depth}"

    def point(epoch: int, batch_mean: float | None, seconds: float) -> None:
        mse = evaluate_mse(forward, z0, f)
        entry = CurvePoint(algorithm, depth, epoch, mse, batch_mean, seconds)
        curve.append(entry)
        if on_point is not None:
            on_point(entry)

    compile_seconds = 0.0
    if config.compile:  # compile outside the timed epochs (the first calls trace and build)
        began = time.perf_counter()
        model.train()
        F.mse_loss(forward(z0[:batch]), f[:batch]).backward()
        optimizer.zero_grad(set_to_none=True)
        evaluate_mse(forward, z0, f)
        compile_seconds = time.perf_counter() - began
        log.info("  %s: compiled in %.0f s", label, compile_seconds)

    point(0, None, 0.0)
    seconds, status, done = 0.0, "completed", 0
    last_log = time.monotonic()
    for epoch in range(1, config.epochs + 1):
        began = time.perf_counter()
        if batch >= n:
            batches: list[torch.Tensor | None] = [None]
        else:
            perm = torch.randperm(n, generator=order).to(z0.device)
            batches = list(perm.split(batch))
        total = torch.zeros((), dtype=torch.float64, device=z0.device)
        for idx in batches:
            xb, fb = (z0, f) if idx is None else (z0[idx], f[idx])
            loss = F.mse_loss(forward(xb), fb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * fb.shape[0]
        batch_mean = float(total) / n
        seconds += time.perf_counter() - began
        if not math.isfinite(batch_mean):
            status = "diverged"
            log.warning(
                "  %s: the loss became %s at epoch %d; run stopped", label, batch_mean, epoch
            )
            break
        done = epoch
        if epoch in checkpoints:
            point(epoch, batch_mean, seconds)
            if not math.isfinite(curve[-1].train_mse):  # the epoch's last step blew it up
                status, done = "diverged", epoch - 1
                log.warning(
                    "  %s: the train MSE became %s after epoch %d; run stopped",
                    label,
                    curve[-1].train_mse,
                    epoch,
                )
                break
            if time.monotonic() - last_log >= 30 and epoch < config.epochs:
                last_log = time.monotonic()
                left = seconds / epoch * (config.epochs - epoch)
                log.info(
                    "  %s: epoch %d/%d, train MSE %.5f (%.0f s, %s)",
                    label,
                    epoch,
                    config.epochs,
                    curve[-1].train_mse,
                    seconds,
                    time_left(left),
                )
    final = curve[-1].train_mse if status == "completed" else None
    result = RunResult(algorithm, depth, status, done, final, parameters, seconds, compile_seconds)
    return result, curve


def resolve_device(config: SimulationConfig) -> torch.device:
    """cuda or cpu as config.device says ('auto': CUDA if available); UserError if cuda is missing."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


@contextlib.contextmanager
def compute_settings(config: SimulationConfig) -> Iterator[torch.device]:
    """The device, and for the run: torch threads (if asked) and flush-denormal on the CPU, restored after.

    Flushing denormals matters: the GD network's saturated sigmoids make gradients of about 1e-40, and
    arithmetic on such denormal floats made its training 2-3x slower on the CPU. It changes values
    below 1.2e-38 only.
    """
    device = resolve_device(config)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    flushed = device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        yield device
    finally:
        if flushed:
            torch.set_flush_denormal(False)
        torch.set_num_threads(threads)


def check_memory(config: SimulationConfig, device: torch.device) -> None:
    """UserError when --samples, --dim, --depths and --batch-size cannot fit in memory."""
    from derive.memory import check_fits, simulation_bytes

    needed = simulation_bytes(
        config.samples,
        config.dim,
        config.depths,
        config.effective_batch_size,
        config.optimizer,
    )
    check_fits(
        needed,
        device,
        f"the simulation ({config.samples:,} samples x {config.dim}, depth {max(config.depths)})",
        "lower --samples, --dim, --depths or --batch-size",
    )


# Options that change how fast a run goes, not its numbers: a resumed run may change them.
RESUMABLE_CHANGES = frozenset({"threads", "compile", "device", "notes"})


def finished_runs(
    out: Path, config: SimulationConfig
) -> tuple[list[RunResult], list[CurvePoint], float]:
    """The runs an earlier, stopped simulation in `out` finished, their curves and its wall time.

    UserError when `out` holds no simulation, or one whose settings differ from `config` in anything
    but RESUMABLE_CHANGES (its numbers would not belong in the same table).
    """
    from derive.experiments import simfiles

    if not (out / simfiles.JSON).is_file():
        raise UserError(f"--resume: {str(out)!r} holds no {simfiles.JSON} to resume from")
    data, curves = simfiles.read_simulation(out)
    stored, wanted = data["config"], config.to_dict()
    for key in sorted(set(stored) | set(wanted)):
        if key not in RESUMABLE_CHANGES and stored.get(key) != wanted.get(key):
            raise UserError(
                f"--resume: {str(out)!r} was run with {key} = {stored.get(key)!r}, not "
                f"{wanted.get(key)!r}; use the same options or another --out"
            )
    runs = [
        RunResult(
            r["algorithm"],
            int(r["depth"]),
            r["status"],
            int(r["epochs_completed"]),
            r["final_train_mse"],
            int(r["parameters"]),
            float(r["train_seconds"]),
            float(r.get("compile_seconds") or 0.0),
            str(r.get("device") or data.get("device") or ""),
        )
        for r in data["runs"]
    ]
    done = {(r.algorithm, r.depth) for r in runs}
    points = [
        CurvePoint(
            str(c["algorithm"]),
            int(c["depth"]),  # type: ignore[call-overload]
            int(c["epoch"]),  # type: ignore[call-overload]
            float(c["train_mse"]),  # type: ignore[arg-type]
            c["batch_loss_mean"],  # type: ignore[arg-type]
            float(c["seconds"]),  # type: ignore[arg-type]
        )
        for c in curves
        if (c["algorithm"], c["depth"]) in done
    ]
    return runs, points, float(data.get("wall_time_seconds") or 0.0)


def run_simulation(
    config: SimulationConfig,
    out_dir: str | Path | None = None,
    command: str | None = None,
    resume: bool = False,
    force: bool = False,
) -> SimulationResult:
    """Train every (algorithm, depth) of `config`; with `out_dir`, write the outputs there as it goes.

    Files (see derive.experiments.simfiles): curves.csv and simulation.json are rewritten atomically
    after each evaluation and each run, so a long run can be watched and a killed one keeps what it did;
    simulation.md, final.csv and simulation.png are written at the end. With `resume`, the runs that
    `out_dir` already holds are kept and not trained again (each run is seeded on its own, so the
    table is the one an uninterrupted run gives). An `out_dir` that already holds a simulation is
    refused unless `resume` (continue it) or `force` (delete its files and start over).
    """
    from derive.experiments import simfiles

    device = resolve_device(config)  # a missing CUDA device is bad input: fail before writing
    check_memory(config, device)
    if out_dir is not None:
        simfiles.check_out_dir(out_dir)
    if resume and out_dir is None:
        raise UserError("--resume needs the output folder of the stopped run (--out)")
    if resume and force:
        raise UserError("--resume and --force exclude each other")
    previous: tuple[list[RunResult], list[CurvePoint], float] = ([], [], 0.0)
    if resume and out_dir is not None:
        previous = finished_runs(Path(out_dir), config)
    elif out_dir is not None and not force and simfiles.holds_simulation(Path(out_dir)):
        raise UserError(
            f"{str(out_dir)!r} already holds a simulation: add --resume to continue it, "
            "--force to start over, or give another --out"
        )
    out = simfiles.prepare_out_dir(out_dir) if out_dir is not None else None
    if out is not None and not resume:
        simfiles.remove_outputs(out)
    began = time.perf_counter() - previous[2]
    with compute_settings(config) as device:
        z0, f = make_data(config.samples, config.dim, config.seed)
        result = SimulationResult(config, data_stats(f, z0), device=device_name(device))
        result.runs, result.curves = list(previous[0]), list(previous[1])
        if previous[0]:
            log.info("simulate: resuming; %d run(s) already done", len(previous[0]))
        z0, f = z0.to(device), f.to(device)
        log.info(
            "simulate: %d runs (%s; depths %s), %d samples x %d, %d epochs, %s lr %g, batch %d, on %s",
            len(config.runs()),
            ", ".join(NETWORKS[a].label for a in config.algorithms),
            ", ".join(map(str, sorted(config.depths))),
            config.samples,
            config.dim,
            config.epochs,
            config.optimizer,
            config.lr,
            config.effective_batch_size,
            result.device,
        )

        def save(status: str) -> None:
            result.wall_seconds = time.perf_counter() - began
            if out is not None:
                simfiles.write_progress(out, result, status, command)

        def on_point(entry: CurvePoint) -> None:
            result.curves.append(entry)
            save("running")

        runs = config.runs()
        try:
            for i, (algorithm, depth) in enumerate(runs, start=1):
                if result.final(algorithm, depth) is not None:
                    continue
                log.info("[%d/%d] %s depth %d", i, len(runs), NETWORKS[algorithm].label, depth)
                run, _ = train_run(config, algorithm, depth, z0, f, on_point)
                run.device = result.device
                result.runs.append(run)
                log.info(
                    "[%d/%d] %s depth %d: %s, final train MSE %s (%.0f s)",
                    i,
                    len(runs),
                    NETWORKS[algorithm].label,
                    depth,
                    run.status,
                    "-" if run.final_train_mse is None else f"{run.final_train_mse:.5f}",
                    run.seconds,
                )
                save("running")
        except BaseException as exc:  # keep what was done, and say why it stopped
            save("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
            raise
        order = {run: i for i, run in enumerate(runs)}
        result.runs.sort(key=lambda r: order[(r.algorithm, r.depth)])
        result.wall_seconds = time.perf_counter() - began
        if out is not None:
            simfiles.write_final(out, result, command)
    return result
