"""Benchmark one epoch of `derive simulate` per network: eager with denormals, eager with them flushed
to zero (derive's default on the CPU), and torch.compile (`--compile`), one thread.

Usage: python bench/bench_simulate.py [--depth 40] [--samples 10000] [--dim 100] [--epochs 3]
                                      [--algorithms gd,heavyball,...] [--no-compile]

Each cell is the median seconds of `--epochs` full-batch Adam epochs after one warm-up epoch (and,
compiled, after compiling, whose time is shown apart). Use it to estimate a full run: the papers'
table is 1,000 epochs of each network at depths 10, 20, 30 and 40. Not a test: timings depend on the
machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from derive.experiments.simulation.config import NETWORKS, SimulationConfig
from derive.experiments.simulation.run import build_network, make_data, seeded


def epoch_seconds(
    config: SimulationConfig, algorithm: str, depth: int, mode: str, epochs: int
) -> tuple[float, float]:
    """(median seconds per epoch, seconds to compile) of `mode`: eager, flush or compiled."""
    z0, f = make_data(config.samples, config.dim, 0)
    with seeded(0):
        model = build_network(config, algorithm, depth)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    torch.set_flush_denormal(mode != "eager")
    forward = torch.compile(model) if mode == "compiled" else model

    def step() -> None:
        loss = F.mse_loss(forward(z0), f)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    began = time.perf_counter()
    step()  # warm-up (and compile)
    compile_s = time.perf_counter() - began if mode == "compiled" else 0.0
    times = []
    for _ in range(epochs):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    torch.set_flush_denormal(False)
    return statistics.median(times), compile_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=40)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per cell")
    parser.add_argument("--algorithms", default=",".join(NETWORKS))
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled column")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = SimulationConfig(samples=args.samples, dim=args.dim, depths=(args.depth,))
    modes = ["eager", "flush"] + ([] if args.no_compile else ["compiled"])
    print(
        f"one full-batch epoch, {args.samples} x {args.dim}, depth {args.depth}, "
        f"torch {torch.__version__}, 1 thread"
    )
    print(f"{'network':8} " + " ".join(f"{m + ' s':>12}" for m in modes) + f"{'compile s':>12}")
    for algorithm in args.algorithms.split(","):
        cells, compile_s = [], 0.0
        for mode in modes:
            seconds, spent = epoch_seconds(config, algorithm, args.depth, mode, args.epochs)
            cells.append(seconds)
            compile_s += spent
        label = NETWORKS[algorithm].label
        print(
            f"{label:8} " + " ".join(f"{c:12.3f}" for c in cells) + f"{compile_s:12.1f}", flush=True
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
