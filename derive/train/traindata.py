"""The one interface the training loop reads a dataset through: `TrainData` and its sources.

`derive.train.sources` opens CIFAR and `derive.train.imagenet` ImageNet into it; a training
source's `train_batches(batch_size, seed, epoch, rows)` yields this rank's part of every global
step (`derive.train.sharding`), an evaluation source this rank's contiguous part of the test set.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


class TrainSource(Protocol):
    def __len__(self) -> int: ...

    def train_batches(
        self, batch_size: int, seed: int, epoch: int, rows: Sequence[slice] | None = None
    ) -> Iterator[Batch]: ...


class EvalSource(Protocol):
    def __len__(self) -> int: ...

    def eval_batches(self, batch_size: int) -> Iterator[Batch]: ...


@dataclass
class TrainData:
    """A dataset ready for the loop."""

    name: str
    num_classes: int
    input_size: int  # images are input_size x input_size
    train: TrainSource
    test: EvalSource  # this rank's part of the test (ImageNet: validation) set
    fingerprint: str
    normalization: dict[str, list[float]]
    info: dict[str, object]  # summary.json's "dataset" block
    report_top5: bool = False  # ImageNet: record top-5 accuracy too
    resident_bytes: int = 0  # bytes of images held in memory for the whole run (CIFAR: all of them)
