"""Run the stability study: many short `derive train` runs (and their probes) on a few worker processes.

Each job is a child process (`python -m derive train ... --resume` or `python -m derive stability
probe ...`) with its own thread count, its output in a log file beside its results. A finished job
is skipped, a stopped one resumes from its last epoch, so the whole study can be stopped (Ctrl-C,
SIGTERM) and started again with the same command. One line per finished job on stderr, and a line
on the running ones every few minutes, say how far it is.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from derive.experiments.stability.plan import Arm, run_name, step_cost
from derive.rundir import load_summary, read_summary
from derive.train.progress import seconds_to_go

log = logging.getLogger(__name__)

RUNS = "runs"
PROBES = "probes"
LOG = "train.log"


@dataclass(frozen=True)
class StudySettings:
    """What every run of the study shares (the doc prints them)."""

    data_dir: str
    study_dir: str
    epochs: int = 2
    dense_epochs: int = 1
    device: str = "auto"
    memory_format: str = "channels_last"
    probe_steps: int = 20

    def epochs_of(self, a: Arm) -> int:
        return self.dense_epochs if a.group == "dense" else self.epochs


@dataclass
class Job:
    """One child process to run: a training run or the probe of one."""

    kind: str  # "train" or "probe"
    arm: Arm
    seed: int
    argv: list[str]
    run_dir: Path
    output: Path  # what says the job is done: the run's summary.json, or the probe's file
    epochs: int
    cost: float  # relative work, for the time estimate
    log_path: Path = field(default=Path())

    @property
    def name(self) -> str:
        return f"{self.kind} {run_name(self.arm, self.seed)}"

    def done(self) -> bool:
        if self.kind == "probe":
            return self.output.is_file()
        summary = load_summary(self.run_dir) or {}  # UserError if damaged
        options = summary.get("options") if isinstance(summary.get("options"), dict) else {}
        if options.get("epochs") != self.epochs:
            return False
        return summary.get("status") in ("completed", "diverged")


def train_argv(settings: StudySettings, a: Arm, seed: int) -> list[str]:
    """The `derive train` options of one run of the study (without the program)."""
    run_dir = Path(settings.study_dir) / RUNS / run_name(a, seed)
    return [
        "train",
        a.model,
        "--dataset",
        "cifar10",
        "--data-dir",
        settings.data_dir,
        "--out",
        str(run_dir),
        "--epochs",
        str(settings.epochs_of(a)),
        "--lr-gamma",
        "1",
        "--seed",
        str(seed),
        *a.options,
        "--log-steps",
        "--device",
        settings.device,
        "--memory-format",
        settings.memory_format,
        "--progress-interval",
        "60",
        "--resume",
    ]


def probe_argv(settings: StudySettings, a: Arm, seed: int) -> list[str]:
    run_dir = Path(settings.study_dir) / RUNS / run_name(a, seed)
    return [
        "stability",
        "probe",
        str(run_dir),
        "--steps",
        str(settings.probe_steps),
        "--data-dir",
        settings.data_dir,
        "--out",
        str(probe_path(settings, a, seed)),
    ]


def probe_path(settings: StudySettings, a: Arm, seed: int) -> Path:
    return Path(settings.study_dir) / PROBES / f"{run_name(a, seed)}.json"


def plan_jobs(
    settings: StudySettings,
    arms: Sequence[Arm],
    seeds: Sequence[int],
    ablation_seeds: Sequence[int],
    probe_seeds: Sequence[int],
) -> list[Job]:
    """Every job of the study in the order to run them, each probe right after its run.

    Seed by seed across the arms, in phases, so that a study stopped early holds a balanced part of
    every comparison: the main arms for the first half of the seeds, the ablations, the dense pair
    for the first half, then the main arms and the dense pair for the second half; the pre-activation
    pair (added to the plan later) after them, over all the seeds; last HBNet-110's readings arms,
    seed by seed across the readings.
    """
    half = (len(seeds) + 1) // 2
    first, second = list(seeds)[:half], list(seeds)[half:]
    phases = [
        ("main", first),
        ("ablation", list(ablation_seeds)),
        ("dense", first),
        ("main", second),
        ("dense", second),
        ("preact", list(seeds)),
        ("readings", list(seeds)),
    ]
    jobs: list[Job] = []
    for group, group_seeds in phases:
        for seed in group_seeds:
            for a in (x for x in arms if x.group == group):
                jobs += _jobs_of(settings, a, seed, seed in probe_seeds)
    return jobs


def _jobs_of(settings: StudySettings, a: Arm, seed: int, probe: bool) -> list[Job]:
    run_dir = Path(settings.study_dir) / RUNS / run_name(a, seed)
    epochs = settings.epochs_of(a)
    jobs = [
        Job(
            "train",
            a,
            seed,
            train_argv(settings, a, seed),
            run_dir,
            run_dir / "summary.json",
            epochs,
            step_cost(a) * epochs,
            run_dir / LOG,
        )
    ]
    if probe:
        out = probe_path(settings, a, seed)
        jobs.append(
            Job(
                "probe",
                a,
                seed,
                probe_argv(settings, a, seed),
                run_dir,
                out,
                epochs,
                step_cost(a) * settings.probe_steps / 80,
                out.with_suffix(".log"),
            )
        )
    return jobs


@dataclass
class _Running:
    job: Job
    process: subprocess.Popen[bytes]
    started: float
    log_file: object


def run_jobs(
    jobs: Sequence[Job],
    workers: int = 2,
    threads: int = 1,
    heartbeat: float = 300.0,
    stream: object = None,
) -> list[str]:
    """Run the jobs not done yet, `workers` at a time, each child with `threads` threads.

    A probe waits for its run. Returns the names of the jobs that failed (exit status other than 0,
    and 3 for a run whose loss diverged: that is a result).
    """
    out = stream or sys.stderr
    todo = deque(j for j in jobs if not j.done())
    total_cost = sum(j.cost for j in todo)
    skipped = len(jobs) - len(todo)
    _say(
        out,
        f"stability: {len(todo)} of {len(jobs)} jobs to run ({skipped} already done), "
        f"{workers} worker(s) x {threads} thread(s)",
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    running: list[_Running] = []
    failed: list[str] = []
    finished_cost, finished, t_start, last_beat = 0.0, 0, time.monotonic(), time.monotonic()
    try:
        while todo or running:
            while len(running) < workers and todo:
                job = _next_ready(todo, running)
                if job is None:
                    if not running:  # what is left waits for runs that failed
                        failed += [j.name for j in todo]
                        _say(out, f"skipped (their run failed): {', '.join(j.name for j in todo)}")
                        todo.clear()
                    break
                job.log_path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(job.log_path, "ab")  # noqa: SIM115 (closed when the job ends)
                process = subprocess.Popen(
                    [sys.executable, "-m", "derive", *job.argv],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
                running.append(_Running(job, process, time.monotonic(), handle))
            time.sleep(0.5)
            for r in list(running):
                code = r.process.poll()
                if code is None:
                    continue
                running.remove(r)
                r.log_file.close()  # type: ignore[attr-defined]
                finished += 1
                finished_cost += r.job.cost
                seconds = time.monotonic() - r.started
                ok = code == 0 or (code == 3 and r.job.kind == "train")
                if not ok:
                    failed.append(r.job.name)
                elapsed = time.monotonic() - t_start
                left = seconds_to_go(finished_cost, total_cost, elapsed)
                _say(
                    out,
                    f"[{finished + skipped}/{len(jobs)}] {r.job.name}: "
                    f"{_outcome(r.job, code)}; {seconds:.0f} s; about {_hours(left)} left",
                )
            if running and time.monotonic() - last_beat >= heartbeat:
                last_beat = time.monotonic()
                names = ", ".join(
                    f"{r.job.name} ({(time.monotonic() - r.started) / 60:.0f} min)" for r in running
                )
                _say(out, f"running: {names}")
    except BaseException:
        _stop(running)
        raise
    return failed


def _stop(running: Sequence[_Running], grace: float = 60.0) -> None:
    """Stop the children: SIGTERM first, on which `derive train` writes its 'interrupted' summary
    and exits 143 (SIGINT would not do: a job started in the background inherits it ignored), then
    SIGKILL for any still running after `grace` seconds, or at once on a second interrupt; never
    leave one orphaned."""
    for r in running:
        r.process.terminate()
    try:
        deadline = time.monotonic() + grace
        for r in running:
            try:
                r.process.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                r.process.kill()
                r.process.wait()
    except BaseException:
        for r in running:
            if r.process.poll() is None:
                r.process.kill()
                r.process.wait()
        raise
    finally:
        for r in running:
            r.log_file.close()  # type: ignore[attr-defined]


def _next_ready(todo: deque[Job], running: Sequence[_Running]) -> Job | None:
    """The first job whose run is not in progress (a probe needs its run finished)."""
    busy = {r.job.run_dir for r in running}
    for job in list(todo):
        if job.run_dir in busy:
            continue
        if job.kind == "probe" and not (job.run_dir / "steps.csv").is_file():
            continue
        todo.remove(job)
        return job
    return None


def _outcome(job: Job, code: int) -> str:
    if job.kind == "probe":
        return "done" if code == 0 else f"failed (exit {code}, see {job.log_path})"
    summary = read_summary(job.run_dir) or {}
    if code == 3:
        return "diverged (the loss became NaN/inf)"
    if code != 0:
        return f"failed (exit {code}, see {job.log_path})"
    loss = summary.get("final_train_loss")
    error = summary.get("final_test_error_percent")
    if isinstance(loss, float) and isinstance(error, float):
        return f"final train loss {loss:.3f}, test error {error:.1f} %"
    return "done"


def _hours(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _say(stream: object, text: str) -> None:
    print(text, file=stream, flush=True)  # type: ignore[call-overload]
