"""Training-step time of DARTS's evaluation network (the `darts_v2` genotype) against ResNet-56, as ratios.

    .venv/bin/python bench/bench_nas_eval.py [--rounds 5] [--batch 32] [--threads 1]

The networks come from `derive.nas.build_network` (the code `derive nas network` generates) at
DARTS's size (36 channels, 20 cells) and at a reduced size (16 channels, 8 cells: the search
supernet's shape), with the auxiliary head and the `--recipe darts-eval` step: CE + 0.4·CE_aux,
drop-path 0.2, gradient clipping 5, SGD lr 0.025 momentum 0.9 wd 3e-4. ResNet-56 (the zoo's) takes
the appendix-D step (SGD Nesterov, CE). One step of each model per round, after a warm-up, in one
process; the median per model is compared, so drift of a shared machine hits every model alike.
Prints a table of step times, ratios to ResNet-56, parameters (without and with the auxiliary head)
and multiply-adds; nothing is asserted.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from derive.models import create_model  # noqa: E402
from derive.models.stats import count_flops, count_parameters  # noqa: E402
from derive.nas import build_network  # noqa: E402
from derive.train.regularize import auxiliary_parameters, training_loss  # noqa: E402


def darts_step(model: nn.Module, batch: int) -> Callable[[], float]:
    """One `--recipe darts-eval` step: auxiliary loss, drop-path 0.2, clipping 5."""
    model.train()
    model.drop_path_prob = 0.2
    optimizer = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        _, loss = training_loss(model(x), y, 0.4)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        return time.perf_counter() - start

    return step


def resnet_step(model: nn.Module, batch: int) -> Callable[[], float]:
    """One appendix-D step (SGD Nesterov 0.9, wd 1e-4, CE)."""
    model.train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4
    )
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "resnet56": create_model("resnet56"),
        "darts_v2, 16 channels, 8 cells": build_network("darts_v2", 16, 8, auxiliary=True),
        "darts_v2, 36 channels, 20 cells": build_network("darts_v2", 36, 20, auxiliary=True),
    }
    steps = {
        name: (resnet_step if name == "resnet56" else darts_step)(model, args.batch)
        for name, model in models.items()
    }
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(step())
    median = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"# bench_nas_eval: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s), batch {args.batch}, {args.rounds} interleaved rounds, CPU"
    )
    print(
        f"{'model':32s} {'median step (s)':>15s} {'min':>7s} {'max':>7s} {'/ resnet56':>10s} "
        f"{'params':>10s} {'+ aux head':>10s} {'mult-adds':>10s}"
    )
    for name, t in times.items():
        model = models[name]
        total = count_parameters(model)
        without = total - auxiliary_parameters(model)
        macs = count_flops(model, (1, 3, 32, 32)) // 2
        print(
            f"{name:32s} {median[name]:15.3f} {min(t):7.3f} {max(t):7.3f} "
            f"{median[name] / median['resnet56']:10.2f} {without:10,d} {total:10,d} {macs:10,d}"
        )


if __name__ == "__main__":
    main()
