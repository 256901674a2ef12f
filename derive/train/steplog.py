"""The per-step log (`derive train --log-steps`): steps.csv, a row per optimizer step.

Columns: `step` (1-based, counted over the whole run), `epoch`, `loss` (the batch's mean
cross-entropy, before the update), `acc` (the batch's accuracy, fraction), `lr` (the rate the step
used: the schedule's, times the warm-up factor during a warm-up) and `grad_norm` (the L2 norm of all
parameter gradients of the batch loss, before the optimizer step; weight decay is not in it).

The values stay on the device during an epoch (no host sync per step) and are moved to the host once
at its end. The whole log lives in the checkpoint as one float64 tensor and steps.csv is rewritten
from it atomically after each epoch, like metrics.csv, so the file always agrees with the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from derive.errors import UserError
from derive.fsutil import atomic_write_text
from derive.readers import read_csv_rows
from derive.train.runfiles import STEPS

STEPS_HEADER = ("step", "epoch", "loss", "acc", "lr", "grad_norm")
_FORMATS = ("{:.0f}", "{:.0f}", "{:.6f}", "{:.6f}", "{:.6g}", "{:.6g}")


def grad_norm(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """L2 norm of all gradients together (a 0-dim tensor on their device; 0 if there are none)."""
    norms = [
        torch.linalg.vector_norm(p.grad.detach().float()) for p in parameters if p.grad is not None
    ]
    if not norms:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(norms))


class StepLog:
    """Rows of every logged step: the finished epochs on the host, the current one on the device."""

    def __init__(self, rows: torch.Tensor | None = None) -> None:
        self.rows = (
            rows if rows is not None else torch.zeros((0, len(STEPS_HEADER)), dtype=torch.float64)
        )
        self._pending: list[
            tuple[int, int, torch.Tensor, torch.Tensor, int, float, torch.Tensor]
        ] = []

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def record(
        self,
        step: int,
        epoch: int,
        loss: torch.Tensor,
        correct: torch.Tensor,
        seen: int,
        lr: float,
        norm: torch.Tensor,
    ) -> None:
        """Keep one step's values (tensors stay where they are until `flush`)."""
        self._pending.append(
            (step, epoch, loss.detach(), correct.detach(), seen, lr, norm.detach())
        )

    def flush(self) -> None:
        """Move the pending steps to the host rows (one transfer per epoch)."""
        if not self._pending:
            return
        losses = torch.stack([p[2].float() for p in self._pending]).double().cpu()
        correct = torch.stack([p[3] for p in self._pending]).double().cpu()
        norms = torch.stack([p[6].float() for p in self._pending]).double().cpu()
        meta = torch.tensor([[p[0], p[1], p[4], p[5]] for p in self._pending], dtype=torch.float64)
        new = torch.stack(
            [meta[:, 0], meta[:, 1], losses, correct / meta[:, 2], meta[:, 3], norms], dim=1
        )
        self.rows = torch.cat([self.rows, new])
        self._pending.clear()

    def discard_pending(self) -> None:
        self._pending.clear()

    def state(self) -> torch.Tensor:
        """What the checkpoint stores: the host rows (pending steps are not part of a checkpoint)."""
        return self.rows.clone()


def steps_csv(rows: torch.Tensor) -> str:
    """The text of steps.csv for a (steps x 6) tensor of STEPS_HEADER columns."""
    lines = [",".join(STEPS_HEADER)]
    for row in rows.tolist():
        lines.append(",".join(f.format(v) for f, v in zip(_FORMATS, row, strict=True)))
    return "\n".join(lines) + "\n"


def write_steps(run_dir: Path, rows: torch.Tensor) -> None:
    atomic_write_text(Path(run_dir) / STEPS, steps_csv(rows))


def read_steps(path: str | Path) -> list[dict[str, float]]:
    """Rows of a steps.csv (from a run directory or the file); UserError if missing or malformed."""
    path, reader = read_csv_rows(path, STEPS)
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != STEPS_HEADER:
        raise UserError(
            f"{str(path)!r} is not a derive steps file (header should be {','.join(STEPS_HEADER)})"
        )
    rows = []
    for number, record in enumerate(reader, start=2):
        if not record:
            continue
        try:
            if len(record) != len(STEPS_HEADER):
                raise ValueError(f"{len(record)} fields")
            rows.append({k: float(v) for k, v in zip(STEPS_HEADER, record, strict=True)})
        except ValueError as exc:
            raise UserError(f"{str(path)!r} line {number} is malformed ({exc})") from None
    return rows
