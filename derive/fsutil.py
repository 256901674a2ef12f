"""Safe file output: validated output directories and atomic writes (temporary file, then rename)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from derive.errors import UserError


def ensure_output_dir(path: str | os.PathLike[str]) -> Path:
    """Return `path` as a writable directory, creating it if missing; raise UserError otherwise."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {str(out)!r} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create output directory {str(out)!r}: {exc.strerror or exc}"
        ) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".derive-probe-", dir=out)
    except OSError as exc:
        raise UserError(
            f"output directory {str(out)!r} is not writable: {exc.strerror or exc}"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return out


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same directory and an atomic rename."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 `text` atomically (see atomic_write_bytes)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_files(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a private staging directory; on success move every file in it into `out_dir`.

    Nothing reaches `out_dir` if the body raises, so a failed run never leaves partial output.
    """
    out = ensure_output_dir(out_dir)
    stage = Path(tempfile.mkdtemp(prefix=".derive-stage-", dir=out))
    try:
        yield stage
        for item in sorted(stage.iterdir()):
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
