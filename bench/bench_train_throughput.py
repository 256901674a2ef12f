"""Training throughput of `derive train`'s epoch loop against a plain PyTorch loop with per-image transforms.

    .venv/bin/python bench/bench_train_throughput.py [--steps 5] [--rounds 5] [--threads 1]

Both sides train the same ResNet-56-sized model (the zoo's `resnet56` when the zoo has it, else a
hand-written stand-in of the same shape, labelled as such) with the same SGD step, batch 64, on the
same random uint8 CIFAR-shaped images:

- derive: `derive.train.loop.train_epoch`, the function `derive train` runs each epoch: images held
  on the device as uint8, each batch normalized, padded/cropped and flipped by a few tensor operations.
- baseline: a Dataset whose __getitem__ does torchvision-style per-image work on a CHW tensor (to float,
  zero-pad 4, random 32x32 crop, random flip, normalize) and a DataLoader (shuffle, batch 64, default
  collate, num_workers=0: on this 2-core machine worker processes only compete with the model for cores).

It also times the input pipelines alone (batches made, no model), which isolates what device-side
augmentation saves, and what derive's compute options (channels_last, bf16 autocast) do on this CPU.
Ratios come from one process, runs interleaved; nothing here is asserted by tests.

Threads default to 1: on a shared machine whose other cores are busy, two intra-op threads ran a
ResNet-56 step 5-10x slower than one (they wait for each other at every barrier), which swamps
everything being measured. Pass --threads to measure otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from derive.train.augment import AugmentOptions, BatchMaker, Normalizer  # noqa: E402
from derive.train.config import TrainConfig  # noqa: E402
from derive.train.loop import Runtime, train_epoch  # noqa: E402
from derive.train.progress import Progress  # noqa: E402

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
BATCH = 64


# ----- the model -------------------------------------------------------------------------------------------
class _Block(nn.Module):
    """CIFAR ResNet basic block with the parameter-free option-A shortcut (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout - cin
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        short = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + short)


class StandInResNet56(nn.Module):
    """ResNet-56 for CIFAR (3 stages x 9 blocks, 16/32/64 channels, ~0.85 M parameters): a bench stand-in."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(9):
                blocks.append(_Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def make_model() -> tuple[nn.Module, str]:
    try:
        from derive.models import list_models, resolve_model

        if "resnet56" in list_models():
            return resolve_model("resnet56", num_classes=10), "zoo resnet56"
    except Exception as exc:  # the zoo may be mid-edit; the bench still runs
        print(f"(zoo unavailable: {type(exc).__name__}: {exc})")
    return (
        StandInResNet56(),
        "stand-in ResNet-56 (bench/bench_train_throughput.py; the zoo has no resnet56 yet)",
    )


# ----- the baseline input pipeline --------------------------------------------------------------------------
class PerImageCifar(Dataset):
    """torchvision-style per-image transforms, written by hand on CHW tensors (no PIL)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i].float().div_(255)  # ToTensor
        x = F.pad(x, (4, 4, 4, 4))  # RandomCrop(32, padding=4): zero padding ...
        dy, dx = random.randint(0, 8), random.randint(0, 8)
        x = x[:, dy : dy + 32, dx : dx + 32]  # ... and a random window
        if random.random() < 0.5:  # RandomHorizontalFlip
            x = x.flip(2)
        return (x - self.mean) / self.std, self.labels[i]  # Normalize


def baseline_steps(
    model: nn.Module, loader: DataLoader, opt: torch.optim.Optimizer, steps: int
) -> float:
    """Images per second of a plain training loop over `steps` batches."""
    model.train()
    it = iter(loader)
    start = time.perf_counter()
    for _ in range(steps):
        x, y = next(it)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * BATCH / (time.perf_counter() - start)


def derive_steps(
    model: nn.Module,
    maker: BatchMaker,
    opt: torch.optim.Optimizer,
    config: TrainConfig,
    epoch: int,
    bf16: bool = False,
) -> float:
    """Images per second of derive's train_epoch over `maker` (sized to the number of steps)."""
    rt = Runtime(
        device=torch.device("cpu"), bf16=bf16, memory_format=maker.memory_format, sync_every=1
    )
    start = time.perf_counter()
    train_epoch(model, maker, opt, config, epoch, rt, Progress(enabled=False))
    return len(maker) / (time.perf_counter() - start)


def pipeline_rate(batches, n_batches: int) -> float:
    start = time.perf_counter()
    for _, (x, _y) in zip(range(n_batches), batches, strict=False):
        x.sum()  # touch the batch
    return n_batches * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measurements per side")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (see the module doc)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)

    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"hardware: {cpu}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, "
        f"load average {load:.2f} at start; torch {torch.__version__}, python {platform.python_version()}"
    )

    n = BATCH * args.steps
    images = torch.randint(0, 256, (n * 4, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (n * 4,))
    model, label = make_model()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {label}, {n_params:,} parameters")
    print(
        f"batch {BATCH}; {args.steps} training steps per measurement, {args.rounds} interleaved rounds per side"
    )

    def maker(
        imgs: torch.Tensor, labs: torch.Tensor, fmt: torch.memory_format = torch.contiguous_format
    ) -> BatchMaker:
        return BatchMaker(
            imgs, labs, Normalizer(MEAN, STD, torch.device("cpu")), AugmentOptions(), fmt
        )

    # 1. the input pipelines alone
    many = torch.randint(0, 256, (160 * BATCH, 3, 32, 32), dtype=torch.uint8)
    many_labels = torch.randint(0, 10, (160 * BATCH,))
    many_loader = DataLoader(PerImageCifar(many, many_labels), batch_size=BATCH, shuffle=True)
    pipes_derive, pipes_base = [], []
    for e in range(1, 6):  # interleaved, 160 batches each
        pipes_derive.append(pipeline_rate(maker(many, many_labels).train_batches(BATCH, 0, e), 160))
        pipes_base.append(pipeline_rate(iter(many_loader), 160))
    pipe_derive, pipe_base = statistics.median(pipes_derive), statistics.median(pipes_base)
    loader = DataLoader(
        PerImageCifar(images, labels), batch_size=BATCH, shuffle=True, num_workers=0
    )

    # 2. whole training steps, same model and arithmetic (fp32, contiguous), interleaved
    config = TrainConfig(
        model="bench", data_dir=".", out=".", batch_size=BATCH, progress_interval=0
    )
    opt = torch.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4
    )
    timed = maker(images[:n], labels[:n])
    derive_steps(
        model, maker(images[: 2 * BATCH], labels[: 2 * BATCH]), opt, config, 0
    )  # warm-up both
    baseline_steps(model, loader, opt, 2)
    ours, base = [], []
    for r in range(args.rounds):
        ours.append(derive_steps(model, timed, opt, config, r + 1))
        base.append(baseline_steps(model, loader, opt, args.steps))
    o, b = statistics.median(ours), statistics.median(base)

    # 3. derive's compute options on this CPU (not defaults on the CPU; auto picks them on CUDA)
    model_cl = model.to(memory_format=torch.channels_last)
    timed_cl = maker(images[:n], labels[:n], torch.channels_last)
    derive_steps(
        model_cl,
        maker(images[:BATCH], labels[:BATCH], torch.channels_last),
        opt,
        config,
        0,
        bf16=True,
    )
    cl = derive_steps(model_cl, timed_cl, opt, config, 1)
    cl_bf16 = derive_steps(model_cl, timed_cl, opt, config, 2, bf16=True)

    print()
    print(f"{'what':<52}{'derive':>10}{'baseline':>10}{'ratio':>8}")
    print(
        f"{'input pipeline alone, images/s':<52}{pipe_derive:>10,.0f}{pipe_base:>10,.0f}{pipe_derive / pipe_base:>7.1f}x"
    )
    print(
        f"  per run, img/s: derive {[round(v) for v in pipes_derive]}, baseline {[round(v) for v in pipes_base]}"
    )
    print(
        f"{'training step incl. model (fp32, contiguous), img/s':<52}{o:>10,.1f}{b:>10,.1f}{o / b:>7.2f}x"
    )
    print(
        f"  per round, img/s: derive {[round(v, 1) for v in ours]}, baseline {[round(v, 1) for v in base]}"
    )
    print(f"{'derive --memory-format channels_last, img/s':<52}{cl:>10,.1f}{'':>10}{cl / b:>7.2f}x")
    print(
        f"{'derive --memory-format channels_last --precision bf16':<52}{cl_bf16:>10,.1f}{'':>10}{cl_bf16 / b:>7.2f}x"
    )
    print()
    step_ms = 1e3 * BATCH / o
    print(
        f"Per batch of {BATCH}: per-image transforms cost {1e3 * BATCH / pipe_base:.2f} ms, device-side batches "
        f"{1e3 * BATCH / pipe_derive:.2f} ms, a training step {step_ms:.0f} ms."
    )
    print(
        "On the CPU the model's arithmetic dominates each step, so removing the per-image work can only "
        f"save about {100 * (BATCH / pipe_base - BATCH / pipe_derive) / (BATCH / b):.1f} % of it; "
        "the ratio of whole steps is that plus noise. The pipeline ratio is what carries over to a GPU,"
    )
    print(
        "where the model step is milliseconds and per-image Python would be the bottleneck (not measured here)."
    )


if __name__ == "__main__":
    main()
