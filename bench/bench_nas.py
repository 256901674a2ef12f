"""One architecture-search step of each search space, first and second order, as ratios to `darts`.

    .venv/bin/python bench/bench_nas.py [--rounds 3] [--channels 8] [--cells 5] [--size 16]
                                        [--batch 16] [--threads 1]

A step is what `derive nas search` does per batch: the architecture step (first order: ∇_α L_val;
second order: the unrolled w', ∇ at w', and the two finite-difference passes) and then the weight
step (SGD with momentum, gradient clipping). Every space is timed in interleaved rounds after a
warm-up and the median per space is compared with `darts` in the same process. The ratios use the
process's CPU time (`time.process_time`, one thread), which other jobs on a shared machine barely
disturb; the wall-clock medians are printed beside them. Also prints the weight and architecture parameter counts at the
paper's search size (16 channels, 8 cells) and at the timed size. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from derive.nas import build_supernet
from derive.nas.architect import Architect

SPACES = ("darts", "heavyball", "agd", "gd", "nesterov", "nesterov_sc", "triple_momentum")


def step_timer(space: str, order: int, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = build_supernet(space, channels=args.channels, cells=args.cells)
    weights = net.weights()
    weight_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    arch_opt = torch.optim.Adam(
        net.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3
    )
    architect = Architect(net, net.arch_parameters(), arch_opt, weight_opt, order)
    gen = torch.Generator().manual_seed(1)
    shape = (args.batch, 3, args.size, args.size)
    train = (torch.randn(shape, generator=gen), torch.randint(0, 10, (args.batch,), generator=gen))
    val = (torch.randn(shape, generator=gen), torch.randint(0, 10, (args.batch,), generator=gen))

    def step() -> tuple[float, float]:
        """(CPU seconds, wall seconds) of one search step."""
        cpu, wall = time.process_time(), time.perf_counter()
        architect.step(train, val, 0.025)
        loss = F.cross_entropy(net(train[0]), train[1])
        weight_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        weight_opt.step()
        return time.process_time() - cpu, time.perf_counter() - wall

    return step


def counts(space: str, channels: int, cells: int) -> tuple[int, int]:
    net = build_supernet(space, channels=channels, cells=cells)
    return (
        sum(p.numel() for p in net.weights()),
        sum(p.numel() for p in net.arch_parameters()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# bench_nas: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s), CPU; timed size: {args.channels} channels, {args.cells} cells, "
        f"{args.size}x{args.size} images, batch {args.batch} (each half), {args.rounds} interleaved "
        "rounds after one warm-up step"
    )
    print()
    print(
        f"{'space':16s} {'edges':>5s} {'weights 16ch/8c':>16s} {'arch 16ch/8c':>13s} {'weights timed':>14s}"
    )
    edges = {}
    for space in SPACES:
        net = build_supernet(space, channels=4, cells=3)
        edges[space] = net.space.num_edges
        paper, paper_arch = counts(space, 16, 8)
        timed, _ = counts(space, args.channels, args.cells)
        print(f"{space:16s} {edges[space]:5d} {paper:16,d} {paper_arch:13,d} {timed:14,d}")
    for order in (1, 2):
        steps = {space: step_timer(space, order, args) for space in SPACES}
        for step in steps.values():  # warm-up
            step()
        cpu: dict[str, list[float]] = {space: [] for space in SPACES}
        wall: dict[str, list[float]] = {space: [] for space in SPACES}
        for _ in range(args.rounds):
            for space, step in steps.items():
                c, w = step()
                cpu[space].append(c)
                wall[space].append(w)
        median = {space: statistics.median(t) for space, t in cpu.items()}
        print()
        print(f"order {order}: one search step (architecture step + weight step)")
        print(
            f"{'space':16s} {'CPU s (median)':>14s} {'min':>7s} {'max':>7s} {'/ darts':>8s} "
            f"{'wall s (median)':>16s}"
        )
        for space, t in cpu.items():
            ratio = median[space] / median["darts"]
            print(
                f"{space:16s} {median[space]:14.3f} {min(t):7.3f} {max(t):7.3f} {ratio:8.3f} "
                f"{statistics.median(wall[space]):16.3f}"
            )


if __name__ == "__main__":
    main()
