"""Training-step time of the papers' networks against their baselines, as ratios in one process.

    .venv/bin/python bench/bench_models.py [--rounds 5] [--batch 64] [--threads 1]

Goals: HBNet-56 / ResNet-56 ≤ 1.05, AGDNet-40 / DenseNet-40 ≤ 1.10, and the project's
ResNet-56 no slower than a plain hand-written ResNet-56. The multi-stream networks against the
network with the same T evaluations: QHMNet-56 and HBVNet-56 (one T per block, a second stream)
against HBNet-56, ≤ 1.10; EGNet-56 (two T per block) against twice ResNet-56, ≤ 1.05. Models are timed in interleaved rounds
(one step of each per round, after warm-up) and the median per model is compared, so drift of a
shared machine hits every model alike. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from derive.models import create_model


class PlainBlock(nn.Module):
    """He et al. (2016) CIFAR basic block, shortcut A, written by hand as a baseline."""

    def __init__(self, c_in: int, c: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.stride, self.pad = stride, c - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.stride != 1 or self.pad:
            x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + x)


class PlainResNet56(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, c_in = [], 16
        for w in (16, 32, 64):
            for b in range(9):
                blocks.append(PlainBlock(c_in if b == 0 else w, w, 2 if b == 0 and w != 16 else 1))
            c_in = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def step_timer(model: nn.Module, batch: int) -> callable:
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4
    )
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))

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
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "plain ResNet-56 (hand-written)": PlainResNet56(),
        "resnet56": create_model("resnet56"),
        "hbnet56": create_model("hbnet56"),
        "densenet40": create_model("densenet40"),
        "agdnet40": create_model("agdnet40"),
        "qhmnet56": create_model("qhmnet56"),
        "hbvnet56": create_model("hbvnet56"),
        "egnet56": create_model("egnet56"),
    }
    steps = {name: step_timer(model, args.batch) for name, model in models.items()}
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(step())
    median = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"# bench_models: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s), batch {args.batch}, {args.rounds} interleaved rounds, CPU"
    )
    print(f"{'model':34s} {'median step (s)':>16s} {'min':>8s} {'max':>8s}")
    for name, t in times.items():
        print(f"{name:34s} {median[name]:16.3f} {min(t):8.3f} {max(t):8.3f}")
    ratios = [
        ("hbnet56 / resnet56", median["hbnet56"] / median["resnet56"], 1.05),
        ("agdnet40 / densenet40", median["agdnet40"] / median["densenet40"], 1.10),
        (
            "resnet56 / plain ResNet-56",
            median["resnet56"] / median["plain ResNet-56 (hand-written)"],
            1.00,
        ),
        ("qhmnet56 / hbnet56", median["qhmnet56"] / median["hbnet56"], 1.10),
        ("hbvnet56 / hbnet56", median["hbvnet56"] / median["hbnet56"], 1.10),
        ("egnet56 / (2 × resnet56)", median["egnet56"] / (2 * median["resnet56"]), 1.05),
    ]
    print()
    for label, ratio, goal in ratios:
        print(
            f"{label:34s} {ratio:6.3f}   goal <= {goal:.2f}   {'met' if ratio <= goal else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
