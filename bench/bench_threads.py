"""Torch threads and the OpenMP wait policy on a shared machine: idle, and with cores kept busy.

    .venv/bin/python bench/bench_threads.py [--rounds 2] [--load N] [--steps 4] [--demo-epochs 20]

Variants (each a fresh subprocess, since the OpenMP runtime reads its settings once, when torch loads):

- `2 threads, spin`: torch's own default here (threads = cores, OMP_WAIT_POLICY unset: libgomp
  spins a while before it sleeps); the baseline of the ratios.
- `2 threads, passive`: OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads sleep at once).
- `1 thread`: OMP_NUM_THREADS=1 (no OpenMP pool to wait for).

Workloads, timed inside the child after one warm-up (torch's import is not counted):

- train: ResNet-20 (the zoo's `resnet20`), SGD, batch 64 of random CIFAR-shaped images, `--steps` steps.
- simulate: `derive simulate --quick --algorithms gd --depths 10` (1,000 samples, 100 epochs).
- demo: the heavy part of `derive demo` (its `simulate --quick`: every network at depths 10 and 20),
  with `--demo-epochs` epochs instead of 100, to keep the bench short; the full step scales with epochs.

Conditions: `idle` (nothing added; other users of the machine may still run things: the hardware
line and the load average before each condition are printed), and `load`: `--load` busy-loop
processes (default: one per core) running throughout. Variants run interleaved, `--rounds` times;
each cell is the median seconds and its ratio to the baseline (below 1: faster). Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "2 threads, spin": {"OMP_NUM_THREADS": "2"},
    "2 threads, passive": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
}
WORKLOADS = ("train", "simulate", "demo")


def child(steps: int, demo_epochs: int) -> dict[str, float]:
    """Run every workload in this process; seconds of each (after a warm-up)."""
    sys.path.insert(0, str(ROOT))
    import torch
    import torch.nn.functional as F

    from derive.experiments.simulation.config import QUICK, SimulationConfig
    from derive.experiments.simulation.run import run_simulation
    from derive.models.registry import create_model

    times: dict[str, float] = {}
    torch.manual_seed(0)
    model = create_model("resnet20")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    times["train"] = time.perf_counter() - start
    gd = SimulationConfig(
        algorithms=("gd",), depths=(10,), samples=QUICK["samples"], epochs=QUICK["epochs"]
    )
    run_simulation(dataclasses.replace(gd, epochs=2))  # warm-up
    start = time.perf_counter()
    run_simulation(gd)
    times["simulate"] = time.perf_counter() - start
    demo = SimulationConfig(samples=QUICK["samples"], depths=(10, 20), epochs=demo_epochs)
    start = time.perf_counter()
    run_simulation(demo)
    times["demo"] = time.perf_counter() - start
    return times


def run_variant(name: str, steps: int, demo_epochs: int) -> dict[str, float]:
    """One child process with the variant's environment; its seconds per workload."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "MKL_"))}
    env.update(VARIANTS[name])
    code = (
        f"import bench.bench_threads as b, json; print(json.dumps(b.child({steps}, {demo_epochs})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    """`n` busy-loop processes for the duration of the block."""
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
            p.join()


def measure(rounds: int, steps: int, demo_epochs: int) -> dict[str, dict[str, float]]:
    """Median seconds of each (variant, workload), the variants interleaved round by round."""
    samples: dict[str, dict[str, list[float]]] = {v: {w: [] for w in WORKLOADS} for v in VARIANTS}
    for _ in range(rounds):
        for name in VARIANTS:
            for w, t in run_variant(name, steps, demo_epochs).items():
                samples[name][w].append(t)
    return {v: {w: statistics.median(ts) for w, ts in ws.items()} for v, ws in samples.items()}


def table(medians: dict[str, dict[str, float]]) -> str:
    """Markdown: seconds and ratio to the first variant, per workload."""
    base = next(iter(medians.values()))
    rows = ["| variant | " + " | ".join(WORKLOADS) + " |", "|---" * (len(WORKLOADS) + 1) + "|"]
    for name, ws in medians.items():
        cells = [f"{ws[w]:.2f} s ({ws[w] / base[w]:.2f}x)" for w in WORKLOADS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def hardware() -> str:
    """CPU model, logical cores, torch version."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    torch_version = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{model}, {os.cpu_count()} logical cores, torch {torch_version}, {platform.platform()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--load", type=int, default=os.cpu_count() or 1, help="busy processes")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--demo-epochs", type=int, default=10)
    parser.add_argument("--conditions", default="idle,load")
    args = parser.parse_args()
    print(f"hardware: {hardware()}")
    for condition in args.conditions.split(","):
        load = os.getloadavg()[0]
        print(
            f"\n{condition} (load average before: {load:.2f}; added busy loops: "
            f"{args.load if condition == 'load' else 0})\n",
            flush=True,
        )
        with busy(args.load) if condition == "load" else contextlib.nullcontext():
            print(table(measure(args.rounds, args.steps, args.demo_epochs)), flush=True)


if __name__ == "__main__":
    main()
