"""Helpers for the training tests: small CIFAR-format data on disk and tiny model files."""

from __future__ import annotations

import gc
import pickle
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

REAL_HEAD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar-10-head"


@dataclass
class Written:
    """What a fixture wrote: raw rows (N x 3072 uint8) and labels, train and test."""

    root: Path
    folder: Path
    train_rows: np.ndarray
    train_labels: np.ndarray
    test_rows: np.ndarray
    test_labels: np.ndarray


def _images(rng: np.random.Generator, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Noisy images whose per-channel brightness depends on the class, so a tiny model can learn them."""
    tint = rng.integers(40, 216, size=(num_classes, 3))
    base = tint[labels][:, :, None] + rng.integers(-40, 41, size=(len(labels), 3, 1024))
    return np.clip(base, 0, 255).astype(np.uint8).reshape(len(labels), 3072)


def write_cifar10(
    root: Path, per_file: int = 40, n_test: int = 60, seed: int = 0, protocol: int = 2
) -> Written:
    """Five training batches of `per_file` rows and a test batch, in the official pickle format."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows, labels = [], []
    for i in range(1, 7):
        n = per_file if i <= 5 else n_test
        y = rng.integers(0, 10, size=n)
        x = _images(rng, y, 10)
        name = f"data_batch_{i}" if i <= 5 else "test_batch"
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in y],
            b"data": x,
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        rows.append(x)
        labels.append(y)
    return Written(
        root, folder, np.concatenate(rows[:5]), np.concatenate(labels[:5]), rows[5], labels[5]
    )


def write_cifar100(root: Path, n_train: int = 150, n_test: int = 50, seed: int = 1) -> Written:
    """cifar-100-python/{train,test} with b'fine_labels' and b'coarse_labels'."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = []
    for name, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 100, size=n)
        x = _images(rng, y, 100)
        batch = {
            b"fine_labels": [int(v) for v in y],
            b"coarse_labels": [int(v) // 5 for v in y],
            b"data": x,
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
        out += [x, y]
    return Written(root, folder, *out)


TINY_MODEL = '''
"""A tiny CIFAR model for tests: conv-BN-ReLU, global average pool, linear."""
import os
import time

import torch
import torch.nn as nn


class Tiny(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, num_classes)
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            {hook}
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.mean((2, 3)))


def create_model(num_classes=10):
    return Tiny(num_classes)
'''

HOOKS = {
    "plain": "pass",
    # after N training batches: write a marker file, then hang (the test kills the process)
    "hang": textwrap.dedent(
        """
        hang_at = int(os.environ.get("DERIVE_TEST_HANG_AT", "0"))
        if hang_at and self.calls == hang_at:
            open(os.environ["DERIVE_TEST_MARKER"], "w").close()
            time.sleep(600)
        """
    ),
    # after N training batches: send this process the signal DERIVE_TEST_SIGNAL (a number)
    "signal": textwrap.dedent(
        """
        signal_at = int(os.environ.get("DERIVE_TEST_SIGNAL_AT", "0"))
        if signal_at and self.calls == signal_at:
            os.kill(os.getpid(), int(os.environ["DERIVE_TEST_SIGNAL"]))
        """
    ),
    # after N training batches: raise (an in-process stand-in for a crash)
    "crash": textwrap.dedent(
        """
        crash_at = int(os.environ.get("DERIVE_TEST_CRASH_AT", "0"))
        if crash_at and self.calls == crash_at:
            raise RuntimeError("simulated crash")
        """
    ),
    # from training batch N on: NaN inputs, hence NaN logits and loss
    "nan": textwrap.dedent(
        """
        if self.calls >= int(os.environ.get("DERIVE_TEST_NAN_AT", "1000000")):
            x = x * float("nan")
        """
    ),
}


def write_model(path: Path, hook: str = "plain") -> Path:
    """A .py model file defining create_model(num_classes); `hook` picks a test behaviour."""
    body = textwrap.indent(HOOKS[hook].strip(), " " * 12).lstrip()
    path.write_text(TINY_MODEL.replace("{hook}", body))
    return path


def tiny_flops(num_classes: int = 10) -> int:
    """FLOPs of the tiny model on one 3x32x32 image, by hand: conv 3->8 3x3 stride 2 (16x16 out), linear 8->C."""
    conv_macs = 8 * 16 * 16 * 3 * 3 * 3
    linear_macs = 8 * num_classes
    return 2 * (conv_macs + linear_macs)


def tiny_parameters(num_classes: int = 10) -> int:
    """Parameters of the tiny model by hand: conv weights, BN scale and shift, linear weights and bias."""
    return 8 * 3 * 3 * 3 + 2 * 8 + 8 * num_classes + num_classes


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models gain nothing from threads, and on a busy machine threads wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def stop_loader_workers() -> int:
    """Stop the worker processes of DataLoader iterators still alive in this process; return how many.

    An in-process ImageNet run keeps its loaders' workers (persistent_workers) until garbage collection
    reaches them, where each worker waits out torch's 5-second join timeout inside some later test;
    stopped here they exit at once."""
    iterators = torch.utils.data.dataloader._MultiProcessingDataLoaderIter
    stopped = 0
    # type(), not isinstance(): isinstance reads __class__, which some lazy objects warn about
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.utils.data.DataLoader):
            obj._iterator = None  # a persistent iterator, stopped below
        elif issubclass(type(obj), iterators) and not obj._shutdown:
            obj._shutdown_workers()  # torch's own shutdown, as the iterator's __del__ would call
            stopped += 1
    return stopped


@pytest.fixture
def loader_workers_stopped():
    """For a test that runs loaders with worker processes in this process: no automatic garbage
    collection during it (which could reach the finished run's loaders at any moment), then the
    workers stopped at once."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        stop_loader_workers()
        if enabled:
            gc.enable()
