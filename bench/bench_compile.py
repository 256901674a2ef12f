"""Training step time of torch.compile (inductor, what `derive train --compile` does) against eager.

    .venv/bin/python bench/bench_compile.py [--models resnet56 hbnet56 densenet40 agdnet40]
        [--batch 32] [--steps 3] [--rounds 3] [--device cpu|cuda] [--threads 1]

For each zoo model, in one process: an eager copy and a `torch.compile(model)` copy (default
backend, inductor; the same call `derive train --compile` makes) with the same initial weights
train on the same random CIFAR-sized batch with SGD (lr 0.1, momentum 0.9, weight decay 5e-4) and
cross-entropy. The first compiled step (tracing and code generation, forward and backward) is
timed apart and reported as the compile time; after one warm-up step per side, `--rounds` rounds
each time `--steps` steps of eager then `--steps` of compiled (interleaved, so load changes hit both
sides alike). The ratio is the median eager step time over the median compiled step time (> 1: the
compiled step is faster). On CUDA each timed step ends in torch.cuda.synchronize(). Nothing here is
asserted by tests.

Threads default to 1 on the CPU (a shared machine's other cores are busy; see
bench/bench_train_throughput.py). If inductor cannot compile a model (no C++ compiler, say), the
row says why and the other models go on.
"""

from __future__ import annotations

import argparse
import os
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
from derive.models.stats import count_parameters  # noqa: E402

MODELS = ("resnet56", "hbnet56", "densenet40", "agdnet40")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="NAME")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    return parser.parse_args()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One SGD training step of `model` on the fixed batch (as derive train's loop makes it)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    return step


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Seconds one step takes (the device synchronized at both ends)."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def measure(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    """Compile time and per-step times of one model, eager and compiled."""
    torch.manual_seed(0)
    eager = create_model(name, num_classes=10).to(device).train()
    compiled_model = create_model(name, num_classes=10).to(device).train()
    compiled_model.load_state_dict(eager.state_dict())
    images = torch.randn(args.batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (args.batch,), device=device)
    eager_step = make_step(eager, images, labels)
    compiled_step = make_step(torch.compile(compiled_model), images, labels)
    row: dict[str, object] = {"model": name, "parameters": count_parameters(eager)}
    try:
        row["compile_s"] = timed(compiled_step, device)
    except Exception as exc:  # report why inductor failed, go on with the next model
        row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        return row
    eager_step()  # warm-up: allocator, first-touch of the optimizer state
    compiled_step()
    eager_times: list[float] = []
    compiled_times: list[float] = []
    for _ in range(args.rounds):
        eager_times += [timed(eager_step, device) for _ in range(args.steps)]
        compiled_times += [timed(compiled_step, device) for _ in range(args.steps)]
    row["eager_ms"] = 1000 * statistics.median(eager_times)
    row["compiled_ms"] = 1000 * statistics.median(compiled_times)
    row["eager_all"] = [round(1000 * t) for t in eager_times]
    row["compiled_all"] = [round(1000 * t) for t in compiled_times]
    return row


def hardware(device: torch.device) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}"
    )
    return (
        f"{where}, load average {load:.2f} at start; torch {torch.__version__}, "
        f"python {platform.python_version()}"
    )


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_table(rows: list[dict[str, object]]) -> None:
    print(
        f"{'model':12s} {'params':>10s} {'compile s':>10s} {'eager ms':>9s} {'compiled ms':>12s}  ratio"
    )
    for row in rows:
        head = f"{row['model']!s:12s} {row['parameters']:>10,}"
        if "error" in row:
            print(f"{head}  inductor failed: {row['error']}")
            continue
        ratio = float(row["eager_ms"]) / float(row["compiled_ms"])  # type: ignore[arg-type]
        print(
            f"{head} {row['compile_s']:>10.1f} {row['eager_ms']:>9.1f} "
            f"{row['compiled_ms']:>12.1f}  {ratio:.2f}x"
        )
    for row in rows:
        if "eager_all" in row:
            print(
                f"  {row['model']}: eager ms {row['eager_all']}, compiled ms {row['compiled_all']}"
            )


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_compile: --device cuda but torch sees no CUDA device")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    print(f"command: python bench/bench_compile.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"hardware: {hardware(device)}")
    print(
        f"batch {args.batch}, 32x32; {args.rounds} interleaved rounds of {args.steps} timed steps "
        "per side after one warm-up step; backend inductor (torch.compile's default)"
    )
    started = time.perf_counter()
    rows = []
    for name in args.models:
        torch._dynamo.reset()
        rows.append(measure(name, args, device))
        print(f"  done {name} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    print_table(rows)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
