"""A throttled progress line on stderr within each epoch: batch i/n, loss, accuracy, images per
second, and the time left in the epoch and in the whole run.

On a terminal the line is redrawn in place; otherwise (a log file, CI) a full line is written at most
once per interval, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from derive.timefmt import time_left


def seconds_left(
    epoch: int,
    epochs: int,
    batch: int,
    batches: int,
    step_seconds: float,
    epoch_seconds: float | None = None,
) -> tuple[float, float]:
    """(seconds left in this epoch, seconds left in the run) after `batch` of `batches`.

    The epoch's rest is its remaining steps at `step_seconds` each; each later epoch takes
    `epoch_seconds` (the last finished one, evaluation included) or, before any has finished,
    `batches` steps at `step_seconds`.
    """
    epoch_left = (batches - batch) * step_seconds
    per_epoch = batches * step_seconds if epoch_seconds is None else epoch_seconds
    return epoch_left, epoch_left + (epochs - epoch) * per_epoch


def seconds_to_go(done: float, total: float, elapsed: float) -> float:
    """Seconds the rest of the work takes at the pace so far: `elapsed` for `done` of `total`
    units (steps, epochs, jobs weighed by cost)."""
    return (total - done) * elapsed / max(done, 1e-9)


def progress_line(
    epoch: int,
    epochs: int,
    batch: int,
    batches: int,
    loss: float,
    acc: float,
    rate: float,
    left: tuple[float, float] | None = None,
) -> str:
    """One progress line; `left` = (seconds left in the epoch, in the run)."""
    line = (
        f"epoch {epoch}/{epochs}  batch {batch}/{batches}  loss {loss:.4f}  "
        f"acc {100 * acc:.2f}%  {rate:,.0f} img/s"
    )
    if left is not None:
        line += f"  epoch: {time_left(left[0])}, run: {time_left(left[1])}"
    return line


class Progress:
    """Call `due()` cheaply every batch; when it says so, compute the numbers and call `show(...)`."""

    def __init__(
        self, interval: float | None = None, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = (1.0 if self.tty else 30.0) if interval is None else interval
        self.enabled = enabled and self.interval > 0
        self._last = time.monotonic()
        self._drawn = False
        self._rate_from = (time.perf_counter(), 0)  # (when, images seen then) for rate()
        self.epoch_seconds: float | None = None  # the last finished epoch's, once there is one

    def start_epoch(self) -> None:
        self._last = time.monotonic()
        self._rate_from = (time.perf_counter(), 0)

    def rate(self, seen: int) -> float:
        """Images per second since the last call (or the epoch's start), `seen` images so far."""
        now = time.perf_counter()
        then, before = self._rate_from
        self._rate_from = (now, seen)
        return (seen - before) / max(now - then, 1e-9)

    def end_epoch(self, seconds: float) -> None:
        """Note how long a finished epoch took (training and evaluation): the run's estimate."""
        self.epoch_seconds = seconds

    def run_left(self, epoch: int, epochs: int) -> float:
        """Seconds the run has left after finishing `epoch` (each epoch as long as the last)."""
        return (epochs - epoch) * (self.epoch_seconds or 0.0)

    def due(self) -> bool:
        return self.enabled and time.monotonic() - self._last >= self.interval

    def show(
        self,
        epoch: int,
        epochs: int,
        batch: int,
        batches: int,
        loss: float,
        acc: float,
        rate: float,
        step_seconds: float | None = None,
    ) -> None:
        """Write the line; with `step_seconds` (seconds per step so far) it says the time left."""
        self._last = time.monotonic()
        left = None
        if step_seconds is not None:
            left = seconds_left(epoch, epochs, batch, batches, step_seconds, self.epoch_seconds)
        line = progress_line(epoch, epochs, batch, batches, loss, acc, rate, left)
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the in-place line (before a permanent log line)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
