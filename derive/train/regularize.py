"""The regularizers of DARTS's evaluation (SCIS §9.3): cutout, auxiliary loss, drop-path, clipping.

- cutout (DeVries & Taylor 2017; DARTS `utils.Cutout`): after normalization, zero an L×L square of
  every training image, centred uniformly over the image and clipped at its border, all channels;
  the centres are drawn per epoch from a generator seeded by (seed, epoch), so a resume replays them;
- auxiliary loss: CE(logits) + w·CE(auxiliary logits) when the model's training forward returns the
  pair (the model is built with create_model(..., auxiliary=True) when w > 0);
- drop-path schedule: the network's `drop_path_prob` is P·(epoch − 1)/epochs before 1-based epoch
  `epoch` (DARTS train.py: `drop_path_prob * epoch / epochs` before 0-based epoch `epoch`);
- gradient clipping: the total 2-norm of the gradients at most C (torch's clip_grad_norm_).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from derive.errors import UserError
from derive.models.registry import load_python_file, model_entry
from derive.train.config import TrainConfig, check_evaluation_options
from derive.train.options import MAX_AUXILIARY_WEIGHT, MAX_CUTOUT

AUXILIARY_MARKER = "auxiliary"
"""Parameters whose name contains this belong to the auxiliary head (DARTS count_parameters_in_MB)."""

check_options = check_evaluation_options


# --- cutout -------------------------------------------------------------------------------------


def cutout_centres(
    n: int, h: int, w: int, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of each image's cutout centre, uniform over 0..h−1 and 0..w−1 (drawn on the CPU)."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, h, (n,), generator=gen)
    cols = torch.randint(0, w, (n,), generator=gen)
    return rows.to(device, non_blocking=True), cols.to(device, non_blocking=True)


def apply_cutout(
    x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, length: int
) -> torch.Tensor:
    """Zero rows [r − L//2, r + L//2) × columns [c − L//2, c + L//2) of image b (all channels),
    clipped at the border, for the centre (r, c) = (rows[b], cols[b]); out of place."""
    half = length // 2
    h, w = x.shape[-2:]
    r = torch.arange(h, device=x.device)
    c = torch.arange(w, device=x.device)
    in_rows = (r >= (rows - half)[:, None]) & (r < (rows + half)[:, None])
    in_cols = (c >= (cols - half)[:, None]) & (c < (cols + half)[:, None])
    return x.masked_fill(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0.0)


# --- drop-path ----------------------------------------------------------------------------------


def drop_path_at(p: float, epoch: int, epochs: int) -> float:
    """The drop-path probability of 1-based `epoch`: P·(epoch − 1)/epochs, 0 in the first epoch."""
    return p * (epoch - 1) / epochs


def set_drop_path(model: nn.Module, config: TrainConfig, epoch: int) -> None:
    """Before each epoch: the model's `drop_path_prob` from the schedule (nothing when --drop-path 0)."""
    if config.drop_path > 0:
        model.drop_path_prob = drop_path_at(config.drop_path, epoch, config.epochs)


# --- auxiliary head -----------------------------------------------------------------------------


def model_options(config: TrainConfig) -> dict[str, object]:
    """Keyword arguments for the model's factory: the --model-arg settings, and auxiliary=True when
    the auxiliary loss is on."""
    if config.auxiliary_weight <= 0:
        return dict(config.model_args)
    factory = _factory(config.model)
    if not _accepts(factory, "auxiliary"):
        raise UserError(
            f"--auxiliary-weight {config.auxiliary_weight:g}: {config.model} has no auxiliary head "
            "(its create_model takes no auxiliary=...; use --auxiliary-weight 0)"
        )
    return {**config.model_args, "auxiliary": True}


def _factory(spec: str) -> Callable[..., object]:
    if spec.endswith(".py"):
        factory = getattr(load_python_file(spec), "create_model", None)
        if not callable(factory):
            raise UserError(f"{spec}: defines no create_model(num_classes=...) function")
        return factory
    return model_entry(spec).factory


def _accepts(factory: Callable[..., object], keyword: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is p.VAR_KEYWORD
        or (p.name == keyword and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        for p in parameters
    )


def check_model(model: nn.Module, config: TrainConfig) -> None:
    """UserError unless the model does what the options ask: a training forward that returns
    (logits, auxiliary logits) for --auxiliary-weight, a `drop_path_prob` attribute for --drop-path."""
    if config.drop_path > 0 and not hasattr(model, "drop_path_prob"):
        raise UserError(
            f"--drop-path {config.drop_path:g}: {config.model} has no drop_path_prob attribute "
            "to set (use --drop-path 0)"
        )
    if config.auxiliary_weight <= 0:
        return
    try:
        probe = copy.deepcopy(
            model
        ).train()  # a copy: the real model's BN statistics stay as they are
        with torch.no_grad():
            out = probe(torch.zeros(2, 3, 32, 32))
    except Exception as exc:  # the user's model is bad input
        raise UserError(
            f"model {config.model} fails on a 2x3x32x32 batch in training mode: {type(exc).__name__}: {exc}"
        ) from None
    shapes = [tuple(t.shape) for t in out] if isinstance(out, (tuple, list)) else None
    if shapes != [(2, config.num_classes)] * 2:
        got = shapes if shapes is not None else type(out).__name__
        raise UserError(
            f"--auxiliary-weight {config.auxiliary_weight:g}: {config.model} in training mode returns "
            f"{got}, not (logits, auxiliary logits) of shape (2, {config.num_classes}) each"
        )


def training_loss(
    output: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    target: torch.Tensor,
    auxiliary_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(main logits, loss): CE(logits) + w·CE(auxiliary logits) when the model returned the pair."""
    if isinstance(output, (tuple, list)):
        logits, auxiliary = output
        loss = F.cross_entropy(logits, target)
        if auxiliary_weight > 0:
            loss = loss + auxiliary_weight * F.cross_entropy(auxiliary, target)
        return logits, loss
    return output, F.cross_entropy(output, target)


def auxiliary_parameters(model: nn.Module) -> int:
    """Parameters of the auxiliary head (names containing 'auxiliary'; DARTS leaves them out of its count)."""
    return sum(p.numel() for name, p in model.named_parameters() if AUXILIARY_MARKER in name)


# --- gradient clipping --------------------------------------------------------------------------


def clip_gradients(model: nn.Module, config: TrainConfig) -> None:
    """Scale the gradients so their total 2-norm is at most --grad-clip (nothing when 0)."""
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)


__all__ = [
    "MAX_AUXILIARY_WEIGHT",
    "MAX_CUTOUT",
    "apply_cutout",
    "auxiliary_parameters",
    "check_model",
    "check_options",
    "clip_gradients",
    "cutout_centres",
    "drop_path_at",
    "model_options",
    "set_drop_path",
    "training_loss",
]
