"""Checkpoints within an epoch: when one is due, what each process keeps, and how an epoch resumes.

A checkpoint is written after an optimizer step when `--checkpoint-every` says so (minutes of wall
time, measured on rank 0, or a number of steps of the run) or when SIGINT/SIGTERM asked the run to
stop (derive.train.interrupts). Every rank must write it at the same step: the step count agrees by
itself, and the other two reasons travel with the sums the loop all-reduces anyway (`Flags`).

Resuming inside an epoch replays nothing: the epoch's order, crops, flips and cutout are drawn from
(seed, epoch) and indexed by position, so the loop simply starts at the saved step; what is not
indexed by position (torch's RNG for dropout and drop-path, the running sums of the epoch's loss and
accuracy, the warm-up) is restored per rank from the checkpoint's `position`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from derive.train.checkpoint import Every
from derive.train.interrupts import NEVER, Interrupts
from derive.train.provenance import rng_state, set_rng_state
from derive.train.warmup import Warmup


@dataclass
class Flags:
    """Reasons for a checkpoint after this step, as this rank sees them (summed over the ranks)."""

    stop: bool = False  # a signal asked the run to stop
    timed: bool = False  # --checkpoint-every MINUTES have passed (rank 0's clock)

    def values(self) -> list[float]:
        return [float(self.stop), float(self.timed)]

    @classmethod
    def from_sums(cls, stop: float, timed: float) -> Flags:
        return cls(stop=stop > 0, timed=timed > 0)


@dataclass
class EpochSums:
    """This rank's running sums of an epoch's training metrics."""

    loss_sum: torch.Tensor  # float64, on the device
    correct: torch.Tensor  # int64, on the device
    seen: int

    @classmethod
    def zeros(cls, device: torch.device) -> EpochSums:
        return cls(
            torch.zeros((), dtype=torch.float64, device=device),
            torch.zeros((), dtype=torch.int64, device=device),
            0,
        )


def rank_entry(sums: EpochSums, warmup: Warmup) -> dict[str, object]:
    """What this rank needs to continue its epoch: RNG state, metric sums, warm-up state."""
    return {
        "rng": rng_state(),
        "loss_sum": float(sums.loss_sum.item()),  # float64: exact
        "correct": int(sums.correct.item()),
        "seen": sums.seen,
        "warmup": warmup.state_dict(),
    }


def restore_entry(entry: dict[str, object], warmup: Warmup, device: torch.device) -> EpochSums:
    """Undo `rank_entry`: restore the RNG and the warm-up, return the sums."""
    set_rng_state(entry["rng"])  # type: ignore[arg-type]
    warmup.load_state_dict(entry["warmup"])  # type: ignore[arg-type]
    return EpochSums(
        torch.tensor(entry["loss_sum"], dtype=torch.float64, device=device),
        torch.tensor(entry["correct"], dtype=torch.int64, device=device),
        int(entry["seen"]),  # type: ignore[call-overload]
    )


Saver = Callable[[int, int, int, float, EpochSums, Warmup], None]


def _no_save(*_: object) -> None:
    return None


@dataclass
class MidEpoch:
    """The loop's view of mid-epoch checkpoints: the rule, the stop request, the writer, and the
    position to resume at (the checkpoint's `position`, consumed by the epoch it belongs to)."""

    every: Every = field(default_factory=Every)
    interrupts: Interrupts = NEVER
    save: Saver = _no_save  # (epoch, step, steps, seconds, sums, warmup): collective on all ranks
    resume: dict[str, object] | None = None
    is_main: bool = True
    _last: float = field(default_factory=time.monotonic)

    def local_flags(self) -> Flags:
        """This rank's reasons after a step (cheap: no host sync)."""
        timed = (
            self.is_main
            and self.every.minutes > 0
            and time.monotonic() - self._last >= 60 * self.every.minutes
        )
        return Flags(stop=self.interrupts.requested, timed=timed)

    def due(self, agreed: Flags, run_step: int) -> bool:
        """Whether every rank writes a checkpoint after this step (`agreed`: the ranks' flags summed)."""
        by_steps = self.every.steps > 0 and run_step % self.every.steps == 0
        return agreed.stop or agreed.timed or by_steps

    def written(self) -> None:
        """Restart the clock after a checkpoint (mid-epoch or at an epoch's end)."""
        self._last = time.monotonic()

    def resume_step(self, epoch: int) -> int:
        """The steps of `epoch` the checkpoint already holds (0 unless written within it)."""
        position = self.resume
        return int(position["step"]) if position and position["epoch"] == epoch else 0  # type: ignore[call-overload]

    def start(
        self, epoch: int, rank: int, world_size: int, warmup: Warmup, device: torch.device
    ) -> tuple[int, float, EpochSums]:
        """(steps already done, seconds they took, sums so far) of `epoch` on this rank; restores
        the rank's RNG and warm-up when the checkpoint was written within this epoch.

        On another number of processes than wrote it, the epoch's sums so far go to rank 0 and a
        rank the checkpoint has no entry for keeps its fresh RNG (the run goes on, not exactly).
        """
        position, self.resume = self.resume, None
        if position is None or position["epoch"] != epoch:
            return 0, 0.0, EpochSums.zeros(device)
        ranks: list[dict[str, object]] = position["ranks"]  # type: ignore[assignment]
        step, seconds = int(position["step"]), float(position["seconds"])  # type: ignore[call-overload, arg-type]
        if len(ranks) == world_size:
            return step, seconds, restore_entry(ranks[rank], warmup, device)
        if rank < len(ranks):
            set_rng_state(ranks[rank]["rng"])  # type: ignore[arg-type]
        warmup.load_state_dict(ranks[min(rank, len(ranks) - 1)]["warmup"])  # type: ignore[arg-type]
        sums = EpochSums.zeros(device)
        if rank == 0:
            sums.loss_sum += sum(float(e["loss_sum"]) for e in ranks)  # type: ignore[arg-type]
            sums.correct += sum(int(e["correct"]) for e in ranks)  # type: ignore[call-overload]
            sums.seen = sum(int(e["seen"]) for e in ranks)  # type: ignore[call-overload]
        return step, seconds, sums
