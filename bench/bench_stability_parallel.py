"""How to spend two CPU cores on many small training runs: 2 processes × 1 thread or 1 process × 2?

The stability study (`derive stability run`) trains ~100 independent short runs. This measures the
throughput (SGD steps per second, all processes together) of the zoo's ResNet-56 training step at
batch 64 in the two layouts, in interleaved rounds, and the step time with channels_last against
contiguous tensors at one thread. It prints ratios; nothing is asserted.

    .venv/bin/python bench/bench_stability_parallel.py [--steps 12] [--rounds 2] [--model resnet56]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time


def _steps(model_name: str, steps: int, threads: int, channels_last: bool) -> float:
    """Seconds for `steps` SGD steps (after 2 warm-up steps) in this process."""
    import torch
    import torch.nn.functional as F

    from derive.models import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(model_name).to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = torch.randn(64, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (64,))
    start = 0.0
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def _worker(args: tuple[str, int, int, bool]) -> float:
    return _steps(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per process and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--model", default="resnet56", help="zoo model")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    results: dict[str, list[float]] = {"1x2": [], "2x1": [], "cl": [], "contig": []}
    with ctx.Pool(2) as pool:
        for _ in range(args.rounds):
            (alone,) = pool.map(_worker, [(args.model, args.steps, 2, False)])
            results["1x2"].append(args.steps / alone)
            pair = pool.map(_worker, [(args.model, args.steps, 1, False)] * 2)
            results["2x1"].append(sum(args.steps / t for t in pair))
            results["contig"].append(pool.apply(_worker, ((args.model, args.steps, 1, False),)))
            results["cl"].append(pool.apply(_worker, ((args.model, args.steps, 1, True),)))
    best = {k: max(v) if k in ("1x2", "2x1") else min(v) for k, v in results.items()}
    print(
        f"# bench_stability_parallel: {platform.machine()}, {os.cpu_count()} CPUs, model {args.model}, "
        f"batch 64, {args.steps} timed steps per process, {args.rounds} interleaved rounds (best round; "
        "2x1: the two processes' step rates added, both running at once)"
    )
    print(f"1 process x 2 threads      {best['1x2']:.3f} steps/s")
    print(f"2 processes x 1 thread     {best['2x1']:.3f} steps/s (both together)")
    print(f"2x1 / 1x2 throughput       {best['2x1'] / best['1x2']:.2f}")
    print(f"1 thread contiguous        {best['contig'] / args.steps:.3f} s/step")
    print(f"1 thread channels_last     {best['cl'] / args.steps:.3f} s/step")
    print(f"contiguous / channels_last {best['contig'] / best['cl']:.2f}")
    print("load average (1, 5, 15 min) at the end:", " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
