"""Which rows of an epoch each rank trains on: the single-process epoch, split step by step.

Every rank draws the same epoch order from (seed, epoch) (`epoch_order`, on the CPU generator, so the
device does not matter). Global step k covers positions [k*B, min((k+1)*B, N)) of that order, exactly
the batch a single process trains on at step k (the last one may be short). Rank r of W takes the
r-th of W contiguous, near-equal parts of it (`step_share`). So, for any world size W that divides B:

- the ranks' shares of a step are disjoint and together are the single-process batch of that step;
- a run resumed at an epoch boundary on another world size continues the same sequence of batches;
- each rank scales its mean loss by `weight` = W * (its rows) / (the step's rows), so the gradient DDP
  averages over the W ranks is the gradient of the step's global mean loss, also for a short last
  step that splits unevenly. Full steps split evenly and get weight 1 exactly.

The short last step is split over as many ranks as can have 2 rows or more (BatchNorm in training
mode needs 2 values per channel: a DARTS auxiliary head pools to 1 x 1), all W when it has 2W rows
or more. A rank left without rows still has to join the step's gradient all-reduce: it computes the
step's first rows (2, or 1 if the step has one) with weight 0 (`Share.count` is 0), which adds
nothing to the gradient or to the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from derive.train.augment import derive_seed


@dataclass(frozen=True)
class Share:
    """One rank's part of one global step."""

    start: int  # first position (in the epoch order) this rank computes
    stop: int  # one past the last position
    count: int  # real rows (0 for the stand-in row of an empty share)
    weight: float  # multiplier of this rank's mean loss (see the module docstring)
    step_rows: int  # rows of the whole global step

    @property
    def rows(self) -> slice:
        return slice(self.start, self.stop)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of an epoch: the first draw of the generator seeded by (seed, epoch, "data").

    It is the `order` of `derive.train.augment.epoch_plan` (same generator, same first draw), so CIFAR
    and ImageNet runs shuffle by one rule.
    """
    gen = torch.Generator().manual_seed(derive_seed(seed, epoch, "data"))
    return torch.randperm(n, generator=gen)


def split_range(start: int, stop: int, rank: int, world_size: int) -> tuple[int, int]:
    """The rank-th of world_size contiguous parts of [start, stop); the first (n mod W) parts get one more."""
    n = stop - start
    base, extra = divmod(n, world_size)
    lo = start + rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


MIN_ROWS = 2  # per rank in a short last step, when it has that many rows per active rank


def step_share(start: int, stop: int, rank: int, world_size: int, full: bool = True) -> Share:
    """Rank `rank`'s part of the global step covering epoch positions [start, stop).

    A full step (`full`) splits over all ranks; a short last one over at most rows // MIN_ROWS ranks.
    """
    step_rows = stop - start
    active = world_size if full else max(1, min(world_size, step_rows // MIN_ROWS))
    if rank >= active:  # no rows of this step: stand-in rows, weight 0
        return Share(start, start + min(MIN_ROWS, step_rows), 0, 0.0, step_rows)
    lo, hi = split_range(start, stop, rank, active)
    count = hi - lo
    weight = 1.0 if count * world_size == step_rows else count * world_size / step_rows
    return Share(lo, hi, count, weight, step_rows)


def epoch_shares(n: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[Share]:
    """Rank `rank`'s share of every global step of an N-row epoch with global batch `batch_size`."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    return [
        step_share(start, min(start + batch_size, n), rank, world_size, start + batch_size <= n)
        for start in range(0, n, batch_size)
    ]


def eval_range(n: int, rank: int, world_size: int) -> slice:
    """The contiguous, unpadded part of an N-row evaluation set that rank `rank` evaluates."""
    lo, hi = split_range(0, n, rank, world_size)
    return slice(lo, hi)
