"""How a run names the machine it ran on, and how many CPU threads torch uses.

Thread defaults (measured in docs/results/threads.md): OpenMP threads that wait for a core spin by
default, and on a busy machine two spinning threads ran 5-100x slower than one. So every command
that runs torch calls `prefer_passive_wait()` before torch is imported (OMP_WAIT_POLICY=PASSIVE:
waiting threads sleep) and `apply_threads(--threads)`: the cores left free by the 1-minute load
average (at least 1), unless `--threads N` or OMP_NUM_THREADS says otherwise.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

WAIT_POLICY = "PASSIVE"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def device_name(device: torch.device) -> str:
    """'cpu (model name from /proc/cpuinfo, N threads)' or 'cuda (GPU name)'."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"cpu ({name}, {torch.get_num_threads()} threads)"


def prefer_passive_wait() -> None:
    """OMP_WAIT_POLICY=PASSIVE unless the environment sets it; effective only before torch loads
    (its OpenMP runtime reads the variable once)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)


def usable_cores() -> int:
    """CPUs this process may run on."""
    with contextlib.suppress(AttributeError, OSError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """The cores not busy by the 1-minute load average, rounded, between 1 and `cores`."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    return max(1, min(cores, math.floor(cores - load + 0.5)))


def chosen_threads(requested: int | None) -> int:
    """`requested` (--threads) if given, else a valid OMP_NUM_THREADS, else `default_threads()`."""
    if requested:
        return requested
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return default_threads()


@contextlib.contextmanager
def apply_threads(requested: int | None) -> Iterator[int]:
    """Within the block, torch (and child processes) use `chosen_threads(requested)` threads;
    the environment and torch's setting are restored after."""
    threads = chosen_threads(requested)
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    # Only torch-running commands come here, after the wait policy is set: loading torch now lets
    # set_num_threads apply the count exactly (torch alone would cap OMP_NUM_THREADS at the cores).
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        torch.set_num_threads(before)


def thread_settings() -> dict[str, object]:
    """For a run's summary: torch's CPU threads and the OpenMP wait policy it started with."""
    import torch

    return {
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset (libgomp: spin, then sleep)"),
    }
