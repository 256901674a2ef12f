"""Helpers for the distributed and ImageNet tests: a BN-free tiny model, torchrun, tiny JPEG trees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

# No BatchNorm: with it, a rank normalizes over its half of the batch and W processes cannot equal one.
# Test hooks, read from the environment:
#   DERIVE_TEST_DUMP=DIR   each evaluation forward saves this rank's parameters to DIR/rank{R}-eval{N}.pt
#   DERIVE_TEST_DIE_AT=N   rank DERIVE_TEST_DIE_RANK (default 1) exits at once at its N-th training batch
NOBN_MODEL = '''
"""A tiny model without BatchNorm: conv, ReLU, global average pool, linear."""
import os

import torch
import torch.nn as nn


class TinyNoBN(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6, num_classes)
        self.calls = 0
        self.evals = 0

    def forward(self, x):
        rank = os.environ.get("RANK", "0")
        if self.training:
            self.calls += 1
            die_at = int(os.environ.get("DERIVE_TEST_DIE_AT", "0"))
            if die_at and self.calls == die_at and rank == os.environ.get("DERIVE_TEST_DIE_RANK", "1"):
                os._exit(17)
        elif os.environ.get("DERIVE_TEST_DUMP") and x.shape[0] > 2:  # not the 2-image build check
            self.evals += 1
            path = os.path.join(os.environ["DERIVE_TEST_DUMP"], f"rank{rank}-eval{self.evals}.pt")
            torch.save({k: v.detach().cpu().clone() for k, v in self.state_dict().items()}, path)
        x = torch.relu(self.conv(x))
        return self.fc(x.mean((2, 3)))


def create_model(num_classes=10):
    return TinyNoBN(num_classes)
'''


def write_nobn_model(path: Path) -> Path:
    path.write_text(NOBN_MODEL)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child run: one thread per process, gloo on loopback, no stray test hooks
    or launcher variables from an outer torchrun."""
    drop = ("DERIVE_TEST_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
        GLOO_SOCKET_IFNAME="lo",
        **extra,
    )
    return env


def torchrun(
    nproc: int, args: list[str], timeout: float = 180, **env: str
) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=NPROC -m derive ARGS` (gloo, CPU), output captured."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "derive",
        *args,
    ]
    return subprocess.run(
        command,
        cwd=REPO,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_imagefolder(
    root: Path,
    classes: tuple[str, ...] = ("n01440764", "n01443537", "n01484850"),
    per_class: tuple[int, int] = (6, 2),
    size: tuple[int, int] = (40, 48),
    seed: int = 0,
) -> Path:
    """root/train/<wnid>/*.JPEG and root/val/<wnid>/*.JPEG: small noisy JPEGs tinted by class."""
    from torchvision.io import encode_jpeg

    rng = np.random.default_rng(seed)
    tints = rng.integers(40, 216, size=(len(classes), 3))
    for split, count in zip(("train", "val"), per_class, strict=True):
        for c, wnid in enumerate(classes):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                h, w = size if i % 2 == 0 else size[::-1]
                noise = rng.integers(-30, 31, size=(3, h, w))
                pixels = np.clip(tints[c][:, None, None] + noise, 0, 255).astype(np.uint8)
                data = encode_jpeg(torch.from_numpy(pixels), quality=90)
                (folder / f"{wnid}_{i}.JPEG").write_bytes(data.numpy().tobytes())
    return root
