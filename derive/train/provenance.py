"""What a run records about itself: time stamps, the software and checkout it ran with, and the
random-number state that a resumed run restores. Shared by `derive train` and `derive nas search`.
"""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path

import torch

from derive import __version__
from derive.devices import thread_settings


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding derive's source, or (None, None) if there is none."""
    source = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        commit = head.stdout.strip()
        if head.returncode != 0 or len(commit) != 40:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return commit, (bool(status.stdout.strip()) if status.returncode == 0 else None)
    except (OSError, subprocess.SubprocessError):
        return None, None


def software(commit: str | None, dirty: bool | None) -> dict[str, object]:
    """The summary's "software" record: derive, torch and Python versions, the git checkout, and
    torch's CPU threads with the OpenMP wait policy (derive.devices)."""

    return {
        "derive": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": dirty,
        "cpu_threads": thread_settings(),
    }


def rng_state() -> dict[str, object]:
    """torch's CPU generator state, and CUDA's where CUDA is in use (for the checkpoint)."""
    state: dict[str, object] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, object]) -> None:
    """Restore what rng_state() saved; CUDA's part only on a machine with as many devices."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
