"""derive/allocator.py: the recomputing modes return large freed blocks to the system at once.

The checks read glibc's own account of its memory (mallinfo2: hblks, the blocks it serves with
their own mappings) in fresh processes, so the setting under test never leaks into this one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from derive import allocator

GLIBC = allocator.glibc() is not None

# Allocates 1 MiB, frees it, allocates 1 MiB again: glibc's own threshold has risen above the
# block by then (it is served from the heap: 0 mapped blocks); derive's fixed 1 MiB maps it (1).
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from derive import allocator

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = MallInfo2
    print(allocator.configure_for(sys.argv[1]))
    libc.free(libc.malloc(1 << 20))
    before = libc.mallinfo2().hblks
    block = libc.malloc(1 << 20)
    print(libc.mallinfo2().hblks - before)
    libc.free(block)
    """
)


def probe(mode: str, **environ: str) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("GLIBC_TUNABLES", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**env, **environ},
    ).stdout.splitlines()
    return out[0], int(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc on Linux only")
@pytest.mark.parametrize("mode", ["checkpoint", "reversible"])
def test_recomputing_modes_map_large_blocks_so_freeing_returns_them(mode):
    said, mapped = probe(mode)
    assert said.startswith("glibc: blocks of 1 MiB or more")
    assert mapped == 1


@pytest.mark.skipif(not GLIBC, reason="glibc on Linux only")
def test_the_standard_mode_keeps_glibcs_rising_threshold():
    said, mapped = probe("standard")
    assert said.startswith("unchanged")
    assert mapped == 0  # the probe can tell the two apart: the block came from the heap


@pytest.mark.skipif(not GLIBC, reason="glibc on Linux only")
@pytest.mark.parametrize(
    "environ",
    [
        {"MALLOC_MMAP_THRESHOLD_": str(64 << 20)},
        {"GLIBC_TUNABLES": f"glibc.malloc.mmap_threshold={64 << 20}"},
    ],
)
def test_a_users_own_setting_wins(environ):
    said, mapped = probe("reversible", **environ)
    assert said == f"unchanged ({next(iter(environ))} is set)"
    assert mapped == 0  # the user's 64 MiB threshold: the 1 MiB block came from the heap


def test_elsewhere_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert allocator.glibc() is None
    assert allocator.configure_for("reversible") == "unchanged (not glibc on Linux)"


def test_user_setting_reads_only_the_malloc_thresholds():
    assert allocator.user_setting({}) is None
    assert allocator.user_setting({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX"}) is None
    assert allocator.user_setting({"MALLOC_TRIM_THRESHOLD_": "0"}) == "MALLOC_TRIM_THRESHOLD_"
