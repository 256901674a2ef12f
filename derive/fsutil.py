"""Safe file output: checked paths, validated output directories and atomic writes.

Every command that writes goes through this module, so they all behave alike:

- `check_path`: a path component longer than the file system allows (or a NUL byte) is a
  UserError, not an OSError from deep inside a command;
- `output_file`: where a write of PATH lands. A symlink is written *through* (its target is
  replaced, the link stays), a directory or a non-regular file (device node, FIFO, socket) is
  refused, the folder must exist and be writable;
- `atomic_write_bytes` / `atomic_write_text`: a temporary file `.NAME.*.tmp` beside the target, then
  one atomic rename, so a killed process never leaves half a file (`clean_stale_temp` removes the
  temporary files such a kill leaves behind);
- `staged_files`: several files written to a private folder and moved into place only when all
  of them are complete.
Any refusal is a UserError (exit 2, one line) raised before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from derive.errors import UserError

NAME_MAX = 255  # bytes in one path component (ext4, xfs, btrfs, tmpfs, APFS, NTFS)
PATH_MAX = 4096  # bytes in a whole path (Linux)
SHOWN = 60  # characters of a long path quoted in a message


def _shown(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    return repr(text if len(text) <= SHOWN else f"{text[: SHOWN - 20]}…{text[-19:]}")


def _name_max(path: Path) -> int:
    """NAME_MAX of the file system holding `path` (its nearest existing ancestor)."""
    for parent in (path, *path.parents):
        with contextlib.suppress(OSError, ValueError):
            if parent.is_dir():
                return min(os.pathconf(parent, "PC_NAME_MAX"), NAME_MAX)
    return NAME_MAX


def check_path(path: str | os.PathLike[str], what: str = "path") -> Path:
    """`path` as a Path; UserError if the file system could not even look it up.

    Refuses a NUL byte, a component longer than NAME_MAX bytes and a path longer than PATH_MAX,
    which otherwise surface as ENAMETOOLONG from whichever call touches the path first.
    """
    text = os.fspath(path)
    if "\0" in text:
        raise UserError(f"{what} {_shown(text)}: a path cannot contain a NUL character")
    encoded = os.fsencode(text)
    if len(encoded) >= PATH_MAX:
        raise UserError(f"{what}: the path is {len(encoded):,} bytes long (at most {PATH_MAX - 1})")
    limit = _name_max(Path(text).expanduser().absolute())
    for part in Path(text).parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise UserError(
                f"{what} {_shown(text)}: a path component is {size} bytes long; "
                f"the file system allows at most {limit}"
            )
    return Path(text)


def _stat(path: Path, what: str) -> os.stat_result | None:
    """os.stat (following links) or None if nothing is there; UserError for any other failure."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise UserError(f"{what} {_shown(path)}: a part of the path is not a folder") from None
    except OSError as exc:
        raise UserError(f"{what} {_shown(path)}: {exc.strerror or exc}") from None


def output_file(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """The file a write of `path` replaces, checked; UserError (nothing written) if it cannot be.

    A symlink is followed (its target is written, the link kept, as `cp` and shells do); a dangling
    one creates its target. Refused: a directory, an existing file that is not a regular file (a
    device node such as /dev/null, a FIFO, a socket: replacing one with a regular file would break
    whatever uses it), a missing or read-only folder, a too-long name.
    """
    target = check_path(path, what)
    info = _stat(target, what)
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise UserError(f"{what} {_shown(path)} is a directory; give a file name")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise UserError(
            f"{what} {_shown(path)} is not a regular file (a device, FIFO or socket); "
            "refusing to replace it"
        )
    if target.is_symlink():
        target = check_path(os.path.realpath(target), what)
    folder = target.parent
    folder_info = _stat(folder, what)
    if folder_info is None or not stat.S_ISDIR(folder_info.st_mode):
        raise UserError(f"{what} {_shown(path)}: folder {_shown(folder)} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{what} {_shown(path)}: folder {_shown(folder)} is not writable")
    return target


def ensure_output_dir(path: str | os.PathLike[str], what: str = "output directory") -> Path:
    """Return `path` as a writable directory, creating it if missing; raise UserError otherwise."""
    out = check_path(path, what)
    info = _stat(out, what)
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise UserError(f"{what} {_shown(out)} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {what} {_shown(out)}: {exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".derive-probe-", dir=out)
    except OSError as exc:
        raise UserError(f"{what} {_shown(out)} is not writable: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return out


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, what: str = "--out") -> Path:
    """Write `data` to `path` through a temporary file in the same directory and an atomic rename.

    `path` is checked and resolved by `output_file` first (symlinks written through, devices and
    directories refused). A new file gets the usual mode (0666 less the umask), a replaced one keeps
    its own. An OSError (disk full, read-only file system) becomes a UserError; the temporary file
    is removed and the old file, if any, is left as it was. Returns `path`.
    """
    target = output_file(path, what)
    existing = _stat(target, what)
    mode = stat.S_IMODE(existing.st_mode) if existing is not None else 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise UserError(f"cannot write {_shown(path)}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, mode)  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {_shown(path)}: {exc.strerror or exc}") from None
        raise
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str, what: str = "--out") -> Path:
    """Write UTF-8 `text` atomically (see atomic_write_bytes)."""
    return atomic_write_bytes(path, text.encode("utf-8"), what)


def remove_file(path: str | os.PathLike[str], what: str = "output file") -> None:
    """Delete a file the command owns if it is there; UserError for a folder.

    A symlink to a file is removed (the link, never its target); a dangling one holds nothing and
    is kept, so a later write creates its target (as `output_file` does).
    """
    target = check_path(path, what)
    if not target.exists():
        return
    try:
        target.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        if target.is_dir():
            raise UserError(f"{what} {_shown(path)} is a directory; not deleting it") from None
        raise UserError(f"cannot delete {_shown(path)}: {exc.strerror or exc}") from None


def stale_temp_files(folder: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """The temporary files `atomic_write_bytes` leaves in `folder` when killed mid-write, for
    targets called `names` (`.checkpoint.pt.k2j4x.tmp` for checkpoint.pt)."""
    base = Path(folder)
    if not base.is_dir():
        return []
    patterns = [re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]+\.tmp") for name in names]
    return sorted(
        p
        for p in base.iterdir()
        if any(pattern.fullmatch(p.name) for pattern in patterns) and p.is_file()
    )


def clean_stale_temp(folder: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """Delete `stale_temp_files(folder, names)`; return what was deleted.

    Only the caller's own targets are matched, so a run folder shared with other tools loses
    nothing else. Call it when no other process writes those targets (at the start of a run).
    """
    removed = []
    for path in stale_temp_files(folder, names):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def staged_files(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a private staging directory; on success move every file in it into `out_dir`.

    Nothing reaches `out_dir` if the body raises, so a failed run never leaves partial output.
    Every destination is checked (`output_file`) before the first file moves.
    """
    out = ensure_output_dir(out_dir)
    stage = Path(tempfile.mkdtemp(prefix=".derive-stage-", dir=out))
    try:
        yield stage
        items = sorted(stage.iterdir())
        targets = [output_file(out / item.name) for item in items]
        for item, target in zip(items, targets, strict=True):
            if target.parent.resolve() == stage.parent.resolve():
                os.replace(item, target)
            else:  # a symlink into another folder: written through, atomically there
                atomic_write_bytes(target, item.read_bytes())
    finally:
        shutil.rmtree(stage, ignore_errors=True)
