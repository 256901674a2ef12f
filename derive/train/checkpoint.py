"""checkpoint.pt: everything a run needs to continue exactly, written atomically after each epoch.

Holds the model, optimizer and scheduler states, the RNG states, the number of completed epochs, the
metrics history (so metrics.csv can be rewritten consistently), the recipe, the model's identity and
the data's fingerprint (so `--resume` can refuse a checkpoint made for something else).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import torch

from derive.errors import UserError
from derive.fsutil import atomic_write_bytes

FORMAT = "derive-train-checkpoint/1"


def save_checkpoint(path: Path, state: Mapping[str, object]) -> None:
    """Serialize `state` (plus the format tag) and write it atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, object]:
    """Read a checkpoint written by save_checkpoint (tensors land on the CPU); UserError if unreadable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"no checkpoint at {str(path)!r}") from None
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise UserError(
            f"cannot read checkpoint {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{str(path)!r} is not a derive training checkpoint")
    return state


# Recipe options a resumed run may change: more (or fewer, down to those done) epochs extend the run.
EXTENDABLE = frozenset({"epochs"})


def incompatibilities(
    state: Mapping[str, object],
    recipe: Mapping[str, object],
    model_id: str,
    data_id: str,
    defaults: Mapping[str, object] | None = None,
) -> list[str]:
    """What differs between a checkpoint and the run asked for (beyond EXTENDABLE), one phrase each.

    An option the checkpoint does not record (it predates the option) counts as its default in
    `defaults`: a new option's default is the behaviour from before it existed.
    """
    problems = []
    if state.get("model_id") != model_id:
        problems.append(f"model {state.get('model_id')} (checkpoint) vs {model_id} (now)")
    if state.get("data_id") != data_id:
        problems.append("the training/test data differ (different dataset, subset or files)")
    old = state.get("recipe") or {}
    assert isinstance(old, Mapping)
    old = {**(defaults or {}), **old}
    for key in sorted(set(old) | set(recipe)):
        if key not in EXTENDABLE and old.get(key) != recipe.get(key):
            problems.append(f"{key} {old.get(key)!r} (checkpoint) vs {recipe.get(key)!r} (now)")
    return problems


def check_compatible(
    path: Path,
    state: Mapping[str, object],
    recipe: Mapping[str, object],
    model_id: str,
    data_id: str,
    defaults: Mapping[str, object] | None = None,
) -> None:
    """UserError naming every difference if `state` was not made by the same model, data and recipe."""
    problems = incompatibilities(state, recipe, model_id, data_id, defaults)
    if problems:
        raise UserError(
            f"cannot --resume from {str(path)!r}: it was made with different settings: {'; '.join(problems)}. "
            "Use --force to start over, or another --out"
        )
