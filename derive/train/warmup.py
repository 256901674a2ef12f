"""Learning-rate warm-up (`--warmup-steps N --warmup-factor F [--warmup-until-error E]`).

During the first N optimizer steps of a run every parameter group trains at F × the rate the epoch
schedule gives it; after them the schedule alone decides. The factor is applied around each
`optimizer.step()` and taken off right after, so whatever schedule sets the groups' rates (the
papers' step drops, a cosine schedule, anything that writes `group["lr"]`) sees and keeps its own
values: warm-up composes with any schedule as one more per-step factor.

He et al. (2016, §4.2) warmed ResNet-110 up "with 0.01 until the training error is below 80 % (about
400 iterations), and then go back to 0.1": a learning rate of 0.01 is the factor 0.1 of the base 0.1
(the default factor, 0.01, is ten times gentler). `--warmup-factor 0.1 --warmup-steps 400` is the
fixed-length reading; `--warmup-until-error 80` adds their rule itself: the warm-up ends after the
first step at which the training error over the last `ERROR_WINDOW` steps' batches is below 80 %,
and after step N at the latest.

The state (steps done, where the warm-up ended, the recent batches' counts) goes into the
checkpoint, so a run resumed in the middle of its warm-up continues exactly.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator

import torch

from derive.train.options import ERROR_WINDOW


class Warmup:
    """The warm-up of one run: how many steps were taken, and whether the next one is warmed up."""

    def __init__(self, steps: int = 0, factor: float = 0.01, until_error: float | None = None):
        self.steps = steps
        self.factor = factor
        self.until_error = until_error  # percent, or None: the fixed length `steps`
        self.step = 0  # optimizer steps done in the whole run
        self.ended_at: int | None = None if steps > 0 else 0
        self._recent: deque[tuple[int, int]] = deque(maxlen=ERROR_WINDOW)  # (wrong, seen) per step

    @property
    def active(self) -> bool:
        """Whether the next optimizer step is a warm-up step."""
        return self.ended_at is None

    @property
    def needs_counts(self) -> bool:
        """Whether `after_step` needs the batch's counts (the error rule, while warming up)."""
        return self.active and self.until_error is not None

    @contextlib.contextmanager
    def scaled(self, optimizer: torch.optim.Optimizer) -> Iterator[float]:
        """Around `optimizer.step()`: the groups' rates × factor while warming up, restored after.

        Yields the first group's rate as used by this step.
        """
        if not self.active:
            yield float(optimizer.param_groups[0]["lr"])
            return
        scheduled = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * self.factor
        try:
            yield float(optimizer.param_groups[0]["lr"])
        finally:
            for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
                group["lr"] = lr

    def after_step(self, wrong: int = 0, seen: int = 0) -> None:
        """Count one optimizer step (with the batch's misclassified and total images if `needs_counts`)."""
        was_active = self.active
        self.step += 1
        if not was_active:
            return
        if self.until_error is not None:
            self._recent.append((int(wrong), int(seen)))
            total = sum(n for _, n in self._recent)
            if total and 100.0 * sum(w for w, _ in self._recent) / total < self.until_error:
                self.ended_at = self.step
        if self.ended_at is None and self.step >= self.steps:
            self.ended_at = self.step

    def state_dict(self) -> dict[str, object]:
        return {
            "step": self.step,
            "ended_at": self.ended_at,
            "recent": [list(pair) for pair in self._recent],
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.step = int(state["step"])  # type: ignore[arg-type]
        ended = state.get("ended_at")
        self.ended_at = None if ended is None else int(ended)  # type: ignore[arg-type]
        self._recent.clear()
        for wrong, seen in state.get("recent") or []:  # type: ignore[union-attr]
            self._recent.append((int(wrong), int(seen)))

    def describe(self) -> str:
        """One phrase for logs: 'lr x 0.01 for the first 400 steps (or until ...)'."""
        if self.steps <= 0:
            return "no warm-up"
        rule = (
            f" or until the training error of the last {ERROR_WINDOW} steps is below "
            f"{self.until_error:g} %"
            if self.until_error is not None
            else ""
        )
        return f"warm-up: lr x {self.factor:g} for the first {self.steps} steps{rule}"
