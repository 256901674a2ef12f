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
from derive.experiments.simulation import files
from derive.experiments.simulation.config import NETWORKS, SimulationConfig, config_seed
from derive.experiments.simulation.results import (
    CurvePoint,
    DataStats,
    RunResult,
    SimulationResult,
)
from derive.memcheck import check_fits, simulation_bytes
from derive.rundir import changed_settings, recording_stop
from derive.timefmt import time_left
from derive.train.progress import seconds_to_go

log = logging.getLogger("derive.simulate")


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


@dataclass
class _Trainer:
    """One (algorithm, depth) run in progress: its network, optimizer, batch order and curve."""

    config: SimulationConfig
    algorithm: str
    depth: int
    z0: torch.Tensor
    f: torch.Tensor
    on_point: Callable[[CurvePoint], None] | None = None
    curve: list[CurvePoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        seed = config_seed(self.config.seed, self.algorithm, self.depth)
        with seeded(seed):
            self.model = build_network(self.config, self.algorithm, self.depth).to(self.z0.device)
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self.optimizer = _optimizer(self.config, list(self.model.parameters()))
        self.order = torch.Generator().manual_seed(seed ^ 0x5EED)
        self.forward = torch.compile(self.model) if self.config.compile else self.model
        self.label = f"{NETWORKS[self.algorithm].label} depth {self.depth}"

    def point(self, epoch: int, batch_mean: float | None, seconds: float) -> CurvePoint:
        """Evaluate the training set's MSE after `epoch`; the curve's new point."""
        mse = evaluate_mse(self.forward, self.z0, self.f)
        entry = CurvePoint(self.algorithm, self.depth, epoch, mse, batch_mean, seconds)
        self.curve.append(entry)
        if self.on_point is not None:
            self.on_point(entry)
        return entry

    def compile(self) -> float:
        """Compile outside the timed epochs (the first calls trace and build); the seconds taken."""
        if not self.config.compile:
            return 0.0
        began, batch = time.perf_counter(), self.config.effective_batch_size
        self.model.train()
        F.mse_loss(self.forward(self.z0[:batch]), self.f[:batch]).backward()
        self.optimizer.zero_grad(set_to_none=True)
        evaluate_mse(self.forward, self.z0, self.f)
        seconds = time.perf_counter() - began
        log.info("  %s: compiled in %.0f s", self.label, seconds)
        return seconds

    def epoch(self) -> float:
        """One pass over the data in a fresh order; the mean of its mini-batch losses."""
        batch, n, device = self.config.effective_batch_size, self.config.samples, self.z0.device
        if batch >= n:
            batches: list[torch.Tensor | None] = [None]
        else:
            batches = list(torch.randperm(n, generator=self.order).to(device).split(batch))
        total = torch.zeros((), dtype=torch.float64, device=device)
        for idx in batches:
            xb, fb = (self.z0, self.f) if idx is None else (self.z0[idx], self.f[idx])
            loss = F.mse_loss(self.forward(xb), fb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach().double() * fb.shape[0]
        return float(total) / n


def train_run(
    config: SimulationConfig,
    algorithm: str,
    depth: int,
    z0: torch.Tensor,
    f: torch.Tensor,
    on_point: Callable[[CurvePoint], None] | None = None,
) -> tuple[RunResult, list[CurvePoint]]:
    """Train one network for config.epochs epochs; return its result and its curve."""
    run = _Trainer(config, algorithm, depth, z0, f, on_point)
    compile_seconds = run.compile()
    run.point(0, None, 0.0)
    checkpoints = set(config.checkpoints())
    seconds, status, done = 0.0, "completed", 0
    last_log = time.monotonic()
    for epoch in range(1, config.epochs + 1):
        began = time.perf_counter()
        batch_mean = run.epoch()
        seconds += time.perf_counter() - began
        if not math.isfinite(batch_mean):
            status = "diverged"
            log.warning(
                "  %s: the loss became %s at epoch %d; run stopped", run.label, batch_mean, epoch
            )
            break
        done = epoch
        if epoch not in checkpoints:
            continue
        mse = run.point(epoch, batch_mean, seconds).train_mse
        if not math.isfinite(mse):  # the epoch's last step blew it up
            status, done = "diverged", epoch - 1
            log.warning(
                "  %s: the train MSE became %s after epoch %d; run stopped", run.label, mse, epoch
            )
            break
        if time.monotonic() - last_log >= 30 and epoch < config.epochs:
            last_log = time.monotonic()
            _log_progress(run.label, epoch, config.epochs, mse, seconds)
    final = run.curve[-1].train_mse if status == "completed" else None
    result = RunResult(
        algorithm, depth, status, done, final, run.parameters, seconds, compile_seconds
    )
    return result, run.curve


def _log_progress(label: str, epoch: int, epochs: int, mse: float, seconds: float) -> None:
    """The line a long run writes every 30 s or so: epoch, train MSE, time spent and left."""
    left = seconds_to_go(epoch, epochs, seconds)
    log.info(
        "  %s: epoch %d/%d, train MSE %.5f (%.0f s, %s)",
        label,
        epoch,
        epochs,
        mse,
        seconds,
        time_left(left),
    )


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
    if not (out / files.JSON).is_file():
        raise UserError(f"--resume: {str(out)!r} holds no {files.JSON} to resume from")
    data, curves = files.read_simulation(out)
    for key, stored, wanted in changed_settings(
        data["config"], config.to_dict(), RESUMABLE_CHANGES
    )[:1]:
        raise UserError(
            f"--resume: {str(out)!r} was run with {key} = {stored!r}, not "
            f"{wanted!r}; use the same options or another --out"
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

    Files (see `files`): curves.csv and simulation.json are rewritten atomically
    after each evaluation and each run, so a long run can be watched and a killed one keeps what it did;
    simulation.md, final.csv and simulation.png are written at the end. With `resume`, the runs that
    `out_dir` already holds are kept and not trained again (each run is seeded on its own, so the
    table is the one an uninterrupted run gives). An `out_dir` that already holds a simulation is
    refused unless `resume` (continue it) or `force` (delete its files and start over).
    """
    device = resolve_device(config)  # a missing CUDA device is bad input: fail before writing
    check_memory(config, device)
    out, previous = _open_out_dir(config, out_dir, resume, force)
    began = time.perf_counter() - previous[2]
    with compute_settings(config) as device:
        z0, f = make_data(config.samples, config.dim, config.seed)
        result = SimulationResult(config, data_stats(f, z0), device=device_name(device))
        result.runs, result.curves = list(previous[0]), list(previous[1])
        if previous[0]:
            log.info("simulate: resuming; %d run(s) already done", len(previous[0]))
        _log_start(config, result)
        writer = _Outputs(result, out, command, began)
        with recording_stop(writer.save):  # keep what was done, and say why it stopped
            _train_all(config, result, z0.to(device), f.to(device), writer)
        order = {run: i for i, run in enumerate(config.runs())}
        result.runs.sort(key=lambda r: order[(r.algorithm, r.depth)])
        writer.finish()
    return result


Previous = tuple[list[RunResult], list[CurvePoint], float]


def _open_out_dir(
    config: SimulationConfig, out_dir: str | Path | None, resume: bool, force: bool
) -> tuple[Path | None, Previous]:
    """The output folder, checked and created (None without `out_dir`), and what an earlier run
    there finished (with `resume`); UserError, before anything is written, for bad options."""
    folder = files.run_directory(out_dir) if out_dir is not None else None
    if folder is not None:
        folder.check_writable()
    if resume and folder is None:
        raise UserError("--resume needs the output folder of the stopped run (--out)")
    if resume and force:
        raise UserError("--resume and --force exclude each other")
    if folder is None:
        return None, ([], [], 0.0)
    previous: Previous = ([], [], 0.0)
    if resume:
        previous = finished_runs(folder.path, config)
    folder.check(resume, force)
    folder.open(force=not resume)
    return folder.path, previous


def _log_start(config: SimulationConfig, result: SimulationResult) -> None:
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


@dataclass
class _Outputs:
    """Writes a simulation's files as it goes (nothing without an output folder)."""

    result: SimulationResult
    out: Path | None
    command: str | None
    began: float  # perf_counter() at the start, less the wall time of a resumed run's past

    def save(self, status: str) -> None:
        """Rewrite curves.csv and simulation.json with `status`."""
        self.result.wall_seconds = time.perf_counter() - self.began
        if self.out is not None:
            files.write_progress(self.out, self.result, status, self.command)

    def on_point(self, entry: CurvePoint) -> None:
        self.result.curves.append(entry)
        self.save("running")

    def finish(self) -> None:
        """Write every output file of the completed simulation."""
        self.result.wall_seconds = time.perf_counter() - self.began
        if self.out is not None:
            files.write_final(self.out, self.result, self.command)


def _train_all(
    config: SimulationConfig,
    result: SimulationResult,
    z0: torch.Tensor,
    f: torch.Tensor,
    writer: _Outputs,
) -> None:
    """Train every run that `result` does not hold yet, saving after each."""
    runs = config.runs()
    for i, (algorithm, depth) in enumerate(runs, start=1):
        if result.final(algorithm, depth) is not None:
            continue
        label = f"[{i}/{len(runs)}] {NETWORKS[algorithm].label} depth {depth}"
        log.info("%s", label)
        run, _ = train_run(config, algorithm, depth, z0, f, writer.on_point)
        run.device = result.device
        result.runs.append(run)
        log.info(
            "%s: %s, final train MSE %s (%.0f s)",
            label,
            run.status,
            "-" if run.final_train_mse is None else f"{run.final_train_mse:.5f}",
            run.seconds,
        )
        writer.save("running")
