"""The epoch learning-rate schedule of a run: `step` (the papers' manual-design recipe) or `cosine`.

- step: MultiStepLR, lr × lr_gamma after each milestone (fractions of the epochs);
- cosine: lr·(1 + cos(π·e/epochs))/2 after e completed epochs, to 0 at the end (SGDR without
  restarts, Loshchilov & Hutter 2017; DARTS train.py's CosineAnnealingLR(epochs, eta_min=0)).

Both are stepped once at the end of each epoch. The cosine scheduler is a LambdaLR, a closed form of
the completed epochs (it never reads the optimizer's current lr), so a per-step factor that scales
the scheduled lr within an epoch (a warm-up) composes with it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, MultiStepLR

from derive.train.options import SCHEDULES, cosine_factor

if TYPE_CHECKING:
    from derive.train.config import TrainConfig


def make_scheduler(optimizer: Optimizer, config: TrainConfig) -> LRScheduler:
    """The scheduler of `config.lr_schedule` for `config.epochs` epochs."""
    if config.lr_schedule == "cosine":
        epochs = config.epochs
        return LambdaLR(optimizer, lambda completed: cosine_factor(completed, epochs))
    return MultiStepLR(optimizer, config.milestone_epochs(), config.lr_gamma)


def retarget(scheduler: LRScheduler, config: TrainConfig) -> None:
    """After `--resume --epochs N`: the epochs ahead follow the schedule for N epochs.

    The cosine LambdaLR is built from config.epochs already; MultiStepLR's milestones are restored
    from the checkpoint and are replaced here.
    """
    if isinstance(scheduler, MultiStepLR):
        scheduler.milestones = Counter(config.milestone_epochs())


def describe(config: TrainConfig) -> str:
    """A short phrase for logs: what the schedule does over config.epochs."""
    if config.lr_schedule == "cosine":
        return f"cosine from {config.lr:g} to 0 over {config.epochs} epochs"
    milestones = ", ".join(map(str, config.milestone_epochs()))
    return f"lr × {config.lr_gamma:g} after epochs {milestones}"


__all__ = ["SCHEDULES", "cosine_factor", "describe", "make_scheduler", "retarget"]
