"""The option definitions of a training run, without torch: choices, small value types and checks.

`derive train --help` and TrainConfig read these, so building the parser or validating a
configuration never loads torch; the modules that act on an option (augment, checkpoint, schedule,
regularize, warmup) import their definitions from here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from derive import limits
from derive.errors import UserError
from derive.modelargs import parse_model_arg

PAD_FILLS = ("mean", "black")
SCHEDULES = ("step", "cosine")

ERROR_WINDOW = 20
"""Steps whose batches the --warmup-until-error rule looks at (1,280 images at batch 64)."""

MAX_CUTOUT = 32
"""A square of side 32 centred anywhere already covers at least a quarter of a 32×32 image."""
MAX_AUXILIARY_WEIGHT = 1.0
"""The auxiliary loss helps the main one (DARTS: 0.4); above 1 it would outweigh it."""


@dataclass(frozen=True)
class AugmentOptions:
    """The papers' "+" augmentation: pad, random crop, horizontal flip."""

    enabled: bool = True
    pad: int = 4
    flip: bool = True
    # "mean": zero after normalization (fb.resnet.torch); "black": zero pixels (torchvision)
    pad_fill: str = "mean"
    # "image": each image its own crop and flip; "batch": one crop offset and flip for a whole batch
    per: str = "image"
    cutout: int = 0  # side of the square zeroed after normalization (DARTS Cutout; 0: off)


@dataclass(frozen=True)
class Every:
    """When to write a checkpoint within an epoch: after `minutes` of wall time, or every `steps`
    optimizer steps (0: not by that measure)."""

    minutes: float = 0.0
    steps: int = 0


_STEPS = re.compile(r"\s*(\d+)\s*steps?\s*")


def parse_every(text: str, option: str = "--checkpoint-every") -> Every:
    """'5' or '2.5' (minutes; 0: only after each epoch and when interrupted) or '200steps'."""
    match = _STEPS.fullmatch(text)
    if match:
        steps = int(match.group(1))
        limits.CHECKPOINT_STEPS.check(steps, f"{option} NSTEPS")
        return Every(steps=steps)
    try:
        minutes = float(text)
    except ValueError:
        raise UserError(
            f"{option} takes minutes (e.g. 5 or 0.5) or a number of steps (e.g. 200steps), "
            f"got {text[:40]!r}"
        ) from None
    limits.CHECKPOINT_MINUTES.check(minutes, f"{option} MINUTES")
    return Every(minutes=minutes)


def cosine_factor(completed: int, epochs: int) -> float:
    """(1 + cos(π·completed/epochs))/2: 1 before the first epoch, 0 after the last."""
    return 0.5 * (1.0 + math.cos(math.pi * completed / epochs))


# --- values of options given as text (ValueError: the message the command line shows) -------------


def parse_lr_fractions(text: str) -> tuple[float, ...]:
    """--lr-milestones F,F: increasing fractions strictly between 0 and 1."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(
            f"expected comma-separated fractions like 0.5,0.75, got {text!r}"
        ) from None
    if not values or not all(0 < v < 1 for v in values) or list(values) != sorted(values):
        raise ValueError(f"expected increasing fractions between 0 and 1, got {text!r}")
    return values


def _finite(text: str) -> float:
    """float(text), or NaN where it is no number (so every range check refuses it)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def parse_warmup_factor(text: str) -> float:
    """--warmup-factor F: a number in (0, 1] (a warm-up scales the lr down)."""
    value = _finite(text)
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError(f"expected a number in (0, 1], got {text!r}")
    return value


def parse_error_percent(text: str) -> float:
    """--warmup-until-error PERCENT: strictly between 0 and 100."""
    value = _finite(text)
    if not (math.isfinite(value) and 0 < value < 100):
        raise ValueError(f"expected a percentage strictly between 0 and 100, got {text!r}")
    return value


def parse_model_arg_text(text: str) -> str:
    """--model-arg NAME=VALUE, checked as text (derive.modelargs.collect parses it the same way)."""
    try:
        parse_model_arg(text)
    except UserError as exc:
        raise ValueError(str(exc).removeprefix("--model-arg: ")) from None
    return text
