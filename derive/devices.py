"""How a run names the machine it ran on, for the files that record it."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import torch


def device_name(device: torch.device) -> str:
    """'cpu (model name from /proc/cpuinfo, N threads)' or 'cuda (GPU name)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"cpu ({name}, {torch.get_num_threads()} threads)"
