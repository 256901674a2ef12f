"""What each run of the papers' tables would take on this CPU, from measured training throughput.

    .venv/bin/python bench/bench_paper_runs_cpu.py [--steps 2] [--models resnet56,...]
        [--out docs/results/bench_paper_runs_cpu.md]

For every model of SCIS'23 Table 1 (CIFAR, batch 64) and Table 2 (ImageNet, 224 x 224), it times
training steps (forward, cross-entropy, backward, SGD step; fp32, contiguous, one torch thread: what
`derive train` does on a CPU) and evaluation forwards on random inputs, after one warm-up step, and
turns the measured images/s into the wall time of the papers' recipe on one process of this CPU:

    epochs x (train images / training rate + test images / evaluation rate)

CIFAR-10/100: 300 epochs, 50,000 train and 10,000 test images. ImageNet: 100 epochs, 1,281,167 train
and 50,000 validation images. The ImageNet models are timed at batch 8 (per-process batch of a 32-GPU
run; memory and time on this CPU forbid 64) and the input pipeline is not included (see
bench_imagenet_loader.py). These are CPU figures only: no GPU was measured, and nothing here says
what a GPU would take.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CIFAR = [
    "resnet56",
    "hbnet56",
    "resnet110",
    "hbnet110",
    "densenet40",
    "agdnet40",
    "densenet52",
    "agdnet52",
]
IMAGENET = [
    "resnet34",
    "hbnet34",
    "resnet50",
    "hbnet50",
    "resnet101",
    "hbnet101",
    "densenet121",
    "agdnet121",
]
RECIPES = {  # epochs, train images, test images, side, timing batch, classes
    "cifar": (300, 50_000, 10_000, 32, 64, 10),
    "imagenet": (100, 1_281_167, 50_000, 224, 8, 1000),
}


def measure(name: str, steps: int) -> dict[str, float]:
    from derive.models import create_model, model_entry
    from derive.models.variants import paper_init

    kind = model_entry(name).dataset
    _, _, _, side, batch, classes = RECIPES[kind]
    torch.manual_seed(0)
    model = paper_init(create_model(name, num_classes=classes))
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4
    )
    x = torch.randn(batch, 3, side, side)
    y = torch.randint(0, classes, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    model.train()
    step()  # warm-up
    train = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        train.append(time.perf_counter() - start)
    model.eval()
    evals = []
    with torch.no_grad():
        for _ in range(steps):
            start = time.perf_counter()
            model(x)
            evals.append(time.perf_counter() - start)
    return {
        "kind": kind,
        "train_rate": batch / statistics.median(train),
        "eval_rate": batch / statistics.median(evals),
        "batch": batch,
    }


def wall_days(kind: str, train_rate: float, eval_rate: float) -> float:
    epochs, n_train, n_test, *_ = RECIPES[kind]
    return epochs * (n_train / train_rate + n_test / eval_rate) / 86400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--models", default=",".join(CIFAR + IMAGENET))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from derive.devices import device_name

    load = os.getloadavg()[0]
    lines = [
        f"command: python bench/bench_paper_runs_cpu.py --steps {args.steps}",
        f"hardware: {device_name(torch.device('cpu'))}, {os.cpu_count()} logical CPUs shared with other "
        f"jobs, load average {load:.2f} at start; torch {torch.__version__}, python {platform.python_version()}",
        "fp32, contiguous, 1 torch thread, one process; median of the timed steps after a warm-up",
        "",
        f"{'model':<12}{'dataset':<10}{'batch':>6}{'train img/s':>13}{'eval img/s':>12}"
        f"{'recipe on this CPU':>26}",
    ]
    for name in args.models.split(","):
        m = measure(name, args.steps)
        days = wall_days(m["kind"], m["train_rate"], m["eval_rate"])
        epochs = RECIPES[m["kind"]][0]
        lines.append(
            f"{name:<12}{m['kind']:<10}{m['batch']:>6}{m['train_rate']:>13,.1f}{m['eval_rate']:>12,.1f}"
            f"{f'{days:,.1f} days ({epochs} ep.)':>26}"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(
            "# Benchmark: the papers' runs on this CPU, from measured training throughput\n\n"
            "Written by `bench/bench_paper_runs_cpu.py` (its docstring gives the formula). CPU figures "
            "only, from one process: **no GPU was lent for this work**, so no GPU or multi-GPU time "
            "is given or estimated.\n\n```\n" + text + "\n```\n"
        )


if __name__ == "__main__":
    main()
