"""Images per second of the ImageNet input pipeline alone (no model), on this CPU.

    .venv/bin/python bench/bench_imagenet_loader.py [--images 192] [--workers 0,1,2] [--rounds 3]
        [--out docs/results/bench_imagenet_loader.md]

It writes `--images` JPEGs of ImageNet's typical size (500 x 375 and 375 x 500, quality 90, smooth
content with noise, about 100 KB each; the real training set averages about 110 KB and 400 x 350) into
a temporary ImageFolder, then times, per number of DataLoader workers:

- derive, the workers' side: the DataLoader of `derive.train.imagenet.ImageNetSource`, what the CPU
  must sustain (read, torchvision.io.decode_jpeg, RandomResizedCrop 224 + flip as uint8, collate), for
  training and for validation (resize 256 + centre crop 224);
- derive, the device's side: jitter + lighting + normalization of uint8 batches of 64 (on a GPU in a
  real run; timed here on this CPU, as a CPU figure);
- baseline: torchvision's reference recipe in the same process: ImageFolder (Pillow decode) with
  transforms RandomResizedCrop(224), RandomHorizontalFlip, ToTensor, Normalize, and the same DataLoader
  settings (batch 64; jitter and lighting are not in that recipe, so the baseline does less work).

Rounds are interleaved; the median is reported. One torch thread per process (the workers are the
parallelism). What a GPU needs follows from the per-process rate: a GPU that trains at R images/s
needs R / rate decoding processes of this CPU. Nothing here is asserted by tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_images(root: Path, n: int, seed: int = 0) -> None:
    """n JPEGs in 4 class folders of train/ (and a val/ copy of the first folder)."""
    import torch.nn.functional as F
    from torchvision.io import encode_jpeg

    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = (375, 500) if i % 2 == 0 else (500, 375)
        coarse = torch.from_numpy(rng.uniform(0, 255, size=(1, 3, 12, 16)).astype(np.float32))
        smooth = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
        noise = torch.from_numpy(rng.normal(0, 12, size=(3, h, w)).astype(np.float32))
        pixels = (smooth + noise).clamp(0, 255).to(torch.uint8)
        for split in ("train", "val") if i < n // 4 else ("train",):
            folder = root / split / f"n{i % 4:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"img_{i}.JPEG").write_bytes(
                encode_jpeg(pixels, quality=90).numpy().tobytes()
            )


def derive_rate(root: Path, workers: int, train: bool) -> float:
    """Images/s out of derive's DataLoader (uint8 crops, collated): the CPU workers' side."""
    from derive.train import imagenet as inet

    classes = inet.scan_classes(root)
    index = inet.scan_split(root, "train" if train else "val", classes)
    source = inet.ImageNetSource(
        root, index, inet.Augment(), 0, torch.device("cpu"), torch.contiguous_format, workers, False
    )
    if train:
        source.sampler.plan(0, 1, [slice(s, s + 64) for s in range(0, len(index), 64)])
    else:
        source.sampler.plan_eval(slice(None), 64)
    start = time.perf_counter()
    n = sum(len(batch["labels"]) for batch in source.loader)
    return n / (time.perf_counter() - start)


def finish_rate(rounds: int = 5) -> float:
    """Images/s of the device-side finishing (jitter, lighting, normalize) of a 64 x 3 x 224 x 224 batch."""
    from derive.train import imagenet as inet

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 224, 224), dtype=torch.uint8, generator=gen)
    params = torch.stack([inet.draw(i, 0, 1, 375, 500, inet.Augment())[1] for i in range(64)])
    finish = inet.Finisher(torch.device("cpu"), torch.contiguous_format)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        finish(images, params, inet.Augment())
        times.append(time.perf_counter() - start)
    return 64 / statistics.median(times)


def baseline_rate(root: Path, workers: int) -> float:
    from torchvision import datasets, transforms

    preset = transforms.Compose(
        [
            transforms.RandomResizedCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    loader = torch.utils.data.DataLoader(
        datasets.ImageFolder(str(root / "train"), preset),
        batch_size=64,
        shuffle=True,
        num_workers=workers,
        worker_init_fn=(lambda _: torch.set_num_threads(1)) if workers else None,
    )
    start = time.perf_counter()
    n = sum(x.shape[0] for x, _ in loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the report (markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from derive.devices import device_name
    from derive.train.imagenet import require_torchvision

    require_torchvision()
    import torchvision

    workers = [int(w) for w in args.workers.split(",")]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_images(root, args.images)
        sizes = [p.stat().st_size for p in root.glob("train/*/*.JPEG")]
        results: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for w in workers:
                for name, fn in (
                    ("derive train", lambda w=w: derive_rate(root, w, True)),
                    ("derive val", lambda w=w: derive_rate(root, w, False)),
                    ("baseline train", lambda w=w: baseline_rate(root, w)),
                ):
                    results.setdefault((name, w), []).append(fn())
    lines = [
        f"command: python bench/bench_imagenet_loader.py --images {args.images} --workers {args.workers} --rounds {args.rounds}",
        f"hardware: {device_name(torch.device('cpu'))}, {os.cpu_count()} logical CPUs, load average "
        f"{load:.2f} at start; torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"python {platform.python_version()}",
        f"data: {len(sizes)} JPEGs, 500x375 / 375x500, mean {statistics.mean(sizes) / 1e3:.0f} KB; batch 64; "
        f"{args.rounds} interleaved rounds, median",
        "",
        f"{'what':<48}" + "".join(f"{f'{w} workers':>12}" for w in workers),
    ]
    for name in ("derive train", "baseline train", "derive val"):
        label = {
            "derive train": "derive workers, training (decode+RRC+flip)",
            "baseline train": "torchvision reference (Pillow, RRC+flip)",
            "derive val": "derive workers, validation (decode+resize+crop)",
        }[name]
        lines.append(
            f"{label:<48}"
            + "".join(f"{statistics.median(results[(name, w)]):>12,.0f}" for w in workers)
        )
    ratio = "".join(
        f"{statistics.median(results[('derive train', w)]) / statistics.median(results[('baseline train', w)]):>11.2f}x"
        for w in workers
    )
    lines.append(f"{'derive / torchvision reference, training':<48}{ratio}")
    lines.append(
        f"{'device side: jitter+lighting+normalize':<48}{finish_rate():>12,.0f}   (on this CPU, batch 64)"
    )
    one = statistics.median(results[("derive train", 0)]) if 0 in workers else None
    if one:
        lines += [
            "",
            f"one process (0 workers) decodes and augments {one:,.0f} training images/s: a GPU that trains at",
            f"R images/s needs about R / {one:,.0f} such processes (CPU cores) feeding it.",
        ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(
            "# Benchmark: the ImageNet input pipeline alone, images/s (CPU)\n\n"
            "Written by `bench/bench_imagenet_loader.py` (its docstring says what each row times). "
            "**No GPU was lent for this work**: every number is a CPU number, and none is a GPU "
            "estimate.\n\n```\n" + text + "\n```\n"
        )


if __name__ == "__main__":
    main()
