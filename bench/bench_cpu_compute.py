"""The fastest faithful way to train the CIFAR ResNets on this CPU: fp32 against channels_last and bf16.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_cpu_compute.py \
        [--data-dir ../shared/data/cifar-10-head] [--model resnet20] [--batch-size 128] \
        [--steps 5] [--rounds 5] [--result-epochs 2]

Every mode is a `derive train` hardware choice (--precision, --memory-format), resolved by derive's own
`resolve_runtime` and trained by its own `train_epoch` on the real images, with the model `build_model`
makes from the seed and the papers' SGD. Nothing here adds to the training code.

1. Speed: training steps (augmentation, forward, backward, SGD step) in each mode, the modes interleaved
   within every round so that a change in the machine's load hits them all alike; the median images/s of
   each mode and its ratio to fp32 contiguous.
2. Results: from the same seed, each mode trains --result-epochs epochs of the real training set; the
   training loss of every epoch and the test loss and error after the last are printed beside those of
   fp32 from another seed, which gives the size of a difference that is only noise.

Threads default to 1 (see bench/bench_train_throughput.py: two threads on a shared 2-core machine
wait for each other at every barrier). Nothing here is asserted by tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from derive.train.augment import BatchMaker  # noqa: E402
from derive.train.config import TrainConfig  # noqa: E402
from derive.train.loop import (  # noqa: E402
    SINGLE,
    Runtime,
    build_model,
    evaluate,
    resolve_runtime,
    train_epoch,
)
from derive.train.progress import Progress  # noqa: E402
from derive.train.sources import open_data  # noqa: E402
from derive.train.traindata import TrainData  # noqa: E402

MODES = (
    ("fp32", "contiguous"),
    ("fp32", "channels_last"),
    ("bf16", "contiguous"),
    ("bf16", "channels_last"),
)
"""(--precision, --memory-format) pairs; the first is the CPU default every ratio is taken against."""


@dataclass
class Mode:
    """One hardware choice of `derive train`, ready to train."""

    label: str
    config: TrainConfig
    runtime: Runtime


def make_mode(args: argparse.Namespace, precision: str, memory_format: str, seed: int) -> Mode:
    """The TrainConfig `derive train` would build for these options, and its resolved Runtime."""
    config = TrainConfig(
        model=args.model,
        data_dir=args.data_dir,
        out=".",
        batch_size=args.batch_size,
        seed=seed,
        device="cpu",
        precision=precision,
        memory_format=memory_format,
        progress_interval=0,
    )
    label = f"--precision {precision} --memory-format {memory_format}"
    return Mode(label, config, resolve_runtime(config))


def fresh_model(mode: Mode) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The model from the mode's seed, in its memory format, with the papers' SGD (as derive train)."""
    model = build_model(mode.config)
    model.to(mode.runtime.device, memory_format=mode.runtime.memory_format)
    c = mode.config
    opt = torch.optim.SGD(
        model.parameters(),
        lr=c.lr,
        momentum=c.momentum,
        nesterov=c.nesterov,
        weight_decay=c.weight_decay,
    )
    return model, opt


def subset(source: BatchMaker, rows: int, memory_format: torch.memory_format) -> BatchMaker:
    """The first `rows` training images as their own BatchMaker (one epoch = rows / batch steps)."""
    return BatchMaker(
        source.images[:rows],
        source.labels[:rows],
        source.normalize,
        source.options,
        memory_format,
    )


def images_per_second(
    mode: Mode, model: torch.nn.Module, opt: torch.optim.Optimizer, batches: BatchMaker, epoch: int
) -> tuple[float, float]:
    """Images/s of derive's train_epoch over `batches`: per wall-clock second and per second of this
    process's CPU time (which other processes on a loaded machine disturb far less)."""
    wall, cpu = time.perf_counter(), time.process_time()
    train_epoch(
        model, batches, opt, mode.config, epoch, mode.runtime, Progress(enabled=False), SINGLE
    )
    n = len(batches)
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def speed(args: argparse.Namespace, data: TrainData) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU-time) images/s per mode, one measurement per mode in each round, interleaved."""
    modes = [make_mode(args, p, f, seed=0) for p, f in MODES]
    models = [fresh_model(m) for m in modes]
    rows = args.batch_size * args.steps
    timed = [subset(data.train, rows, m.runtime.memory_format) for m in modes]
    warm = [subset(data.train, 2 * args.batch_size, m.runtime.memory_format) for m in modes]
    for m, (model, opt), w in zip(modes, models, warm, strict=True):
        images_per_second(m, model, opt, w, epoch=0)  # first-call costs (oneDNN kernels) outside
    rates: dict[str, list[tuple[float, float]]] = {m.label: [] for m in modes}
    for r in range(args.rounds):
        order = modes if r % 2 == 0 else modes[::-1]  # no mode always first or last
        for m in order:
            i = modes.index(m)
            model, opt = models[i]
            rates[m.label].append(images_per_second(m, model, opt, timed[i], epoch=r + 1))
    return rates


def results(
    args: argparse.Namespace, data: TrainData
) -> list[tuple[str, list[float], float, float]]:
    """(label, training loss per epoch, test loss, test error %) per mode from seed 0, and fp32 from seed 1."""
    runs = [(make_mode(args, p, f, seed=0), "seed 0") for p, f in MODES]
    runs.append((make_mode(args, *MODES[0], seed=1), "seed 1 (noise scale)"))
    out = []
    for mode, seed_label in runs:
        model, opt = fresh_model(mode)
        train = subset(data.train, len(data.train), mode.runtime.memory_format)
        test = subset(data.test, len(data.test), mode.runtime.memory_format)
        losses = []
        for epoch in range(1, args.result_epochs + 1):
            loss, _acc = train_epoch(
                model, train, opt, mode.config, epoch, mode.runtime, Progress(enabled=False), SINGLE
            )
            losses.append(loss)
        test_loss, test_acc = evaluate(model, test, 1000, mode.runtime)
        out.append((f"{mode.label}, {seed_label}", losses, test_loss, 100 * (1 - test_acc)))
    return out


def hardware_line() -> str:
    """CPU model, cores, torch threads and the load average now."""
    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        lines = info.read_text().splitlines()
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu
        )
    load = os.getloadavg()
    return (
        f"hardware: {cpu}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"torch {torch.__version__}, python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data/cifar-10-head")
    parser.add_argument("--model", default="resnet20", help="zoo name or .py file, as derive train")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="training steps per speed measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved speed rounds")
    parser.add_argument(
        "--result-epochs", type=int, default=2, help="epochs of the results check (0: none)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(hardware_line() + " (at start)")
    data = open_data(
        make_mode(args, "fp32", "contiguous", 0).config,
        torch.device("cpu"),
        torch.contiguous_format,
        SINGLE,
    )
    print(
        f"model {args.model}, batch {args.batch_size}, data {args.data_dir} "
        f"({len(data.train)} train / {len(data.test)} test images)"
    )

    rates = speed(args, data)
    print(f"\nspeed: {args.steps} steps per measurement, {args.rounds} interleaved rounds")
    for clock, which in (("CPU time of this process", 1), ("wall clock", 0)):
        base = statistics.median(v[which] for v in rates[next(iter(rates))])
        print(f"images per second of {clock}: median, ratio to the first row, per round")
        for label, values in rates.items():
            med = statistics.median(v[which] for v in values)
            per_round = ", ".join(f"{v[which]:.0f}" for v in values)
            print(f"  {label:<50}{med:>8.1f}{med / base:>7.2f}x  [{per_round}]")
    if args.result_epochs == 0:
        print(hardware_line() + " (at end)")
        return

    print(
        f"\nresults after {args.result_epochs} epochs from the same seed (batch {args.batch_size})"
    )
    print(
        f"{'derive train options':<72}{'train loss per epoch':>24}{'test loss':>11}{'test err':>10}"
    )
    for label, losses, test_loss, test_err in results(args, data):
        per_epoch = " ".join(f"{v:.4f}" for v in losses)
        print(f"{label:<72}{per_epoch:>24}{test_loss:>11.4f}{test_err:>9.2f}%")
    print(hardware_line() + " (at end)")


if __name__ == "__main__":
    main()
