"""How a training run's freed host memory goes back to the system (glibc's malloc, Linux).

glibc serves a request of at least M_MMAP_THRESHOLD bytes (128 KiB at start) with a memory mapping
of its own, unmapped at free. But when such a block is freed it raises the threshold to that
block's size (up to 32 MiB), so after the first step a network's activations come from the heap.
The heap keeps freed memory resident, and small blocks that live on (parameter gradients, a
stage's kept states) split the holes that large ones leave, so it grows past what is in use. A
step that recomputes instead of keeping (`--memory checkpoint | reversible`) allocates and frees
a block's activations again and again, and its peak RSS then measures the heap's fragmentation
more than its activations (docs/memory.md gives the numbers).

`configure_for(memory)` fixes the thresholds for the recomputing modes, at 1 MiB (mmap) and
2 MiB (trim, twice the other, as glibc keeps them): tensors of 1 MiB or more get their own
mappings, returned to the system when freed; smaller ones come from the heap as before, where
reusing freed memory is cheap. It costs a page fault per page of every large tensor allocated
(within 2 % of a CPU step in docs/results/bench_memory.md; nothing where no tensor reaches
1 MiB). The standard mode keeps glibc's behaviour. Environment settings of the user's
(MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, glibc.malloc tunables) win: nothing is changed
then. Elsewhere (not Linux, another C library) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 2 << 20
RECOMPUTING_MODES = ("checkpoint", "reversible")
_USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_USER_TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold")


def glibc() -> ctypes.CDLL | None:
    """The running glibc (Linux only), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION") or ""
        return ctypes.CDLL("libc.so.6") if version.startswith("glibc") else None
    except (ValueError, OSError):
        return None


def user_setting(environ: dict[str, str] | None = None) -> str | None:
    """The environment variable by which the user already chose these thresholds, if any."""
    environ = os.environ if environ is None else environ
    for name in _USER_VARIABLES:
        if name in environ:
            return name
    tunables = environ.get("GLIBC_TUNABLES", "")
    return "GLIBC_TUNABLES" if any(t in tunables for t in _USER_TUNABLES) else None


def set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """mallopt(M_MMAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD); whether glibc took both."""
    libc = glibc()
    if libc is None:
        return False
    took_mmap = libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    took_trim = libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    return took_mmap and took_trim


def configure_for(memory: str) -> str:
    """Set the allocator up for a run in memory mode `memory`; what was done, in words."""
    if memory not in RECOMPUTING_MODES:
        return "unchanged (the standard mode keeps glibc's own thresholds)"
    chosen = user_setting()
    if chosen is not None:
        return f"unchanged ({chosen} is set)"
    if not set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD):
        return "unchanged (not glibc on Linux)"
    return f"glibc: blocks of {MMAP_THRESHOLD >> 20} MiB or more returned to the system when freed"


__all__ = [
    "MMAP_THRESHOLD",
    "TRIM_THRESHOLD",
    "configure_for",
    "glibc",
    "set_thresholds",
    "user_setting",
]
