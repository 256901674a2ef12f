"""Walking an ImageFolder class folder safely, and reading its files without ever blocking.

A data tree is input like any other: it may hold symlink loops (`a/loop -> ..`), links into other
class folders, dangling links, FIFOs, sockets or device nodes with an image's name. The walk:

- keeps regular files with an image extension, and links that resolve to regular files;
- follows a link to a folder only once, and never one that leads back to a folder above it (a
  loop), into the data folder's own folders (another class: its images would get this class's
  label) or to a folder already walked (its images would be counted twice);
- skips everything else, counting each kind, so the caller can say once what it left out.

Files are only ever opened after `os.stat` says they are regular, with O_NONBLOCK, and checked
again with `fstat`: a FIFO swapped in later cannot block a reader.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

Key = tuple[int, int]  # (st_dev, st_ino): one folder, whatever the path that reaches it

LOOP = "symlink loop"
OTHER_CLASS = "link to another class folder"
TWICE = "folder reached twice"
DANGLING = "dangling link"
PLURALS = {OTHER_CLASS: "links to another class folder", TWICE: "folders reached twice"}


class NotRegularFile(OSError):
    """A path that should be an image file is a FIFO, socket, device or folder."""


def folder_key(path: str | os.PathLike[str]) -> Key:
    """The identity of the folder (or file) at `path`, links followed."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


def ancestor_keys(path: str | os.PathLike[str]) -> frozenset[Key]:
    """The identities of every folder above `path`'s real location, `/` included."""
    real = Path(os.path.realpath(path))
    keys = set()
    for parent in real.parents:
        with contextlib.suppress(OSError):
            keys.add(folder_key(parent))
    return frozenset(keys)


def special_kind(mode: int) -> str:
    """What a file that is neither regular nor a folder is, in a word or two."""
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


@dataclass
class Skipped:
    """Entries left out of a scan: how many of each kind, and the first one (relative path)."""

    counts: Counter[str] = field(default_factory=Counter)
    first: str | None = None

    def add(self, kind: str, path: str) -> None:
        self.counts[kind] += 1
        if self.first is None:
            self.first = path

    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str | None:
        """One line: 'skipped 3 entries that are not regular image files (1 FIFO, ...), e.g. ...'."""
        n = self.total()
        if not n:
            return None
        kinds = ", ".join(
            f"{c} {_plural(kind) if c > 1 else kind}" for kind, c in self.counts.most_common()
        )
        what = (
            "entry that is not a regular image file"
            if n == 1
            else "entries that are not regular image files"
        )
        return f"skipped {n} {what} ({kinds}), e.g. {self.first!r}"


def _plural(kind: str) -> str:
    """'symlink loops', 'links to another class folder', 'FIFOs', ..."""
    if kind in PLURALS:
        return PLURALS[kind]
    return kind if "(" in kind else f"{kind}s"


@dataclass
class Walk:
    """The state one split's scan shares between its class folders."""

    root: Path  # paths are reported relative to it
    extensions: tuple[str, ...]
    data_folders: frozenset[Key]  # the data folder, its splits and all their class folders
    walked: set[Key] = field(default_factory=set)
    skipped: Skipped = field(default_factory=Skipped)
    top_real: str = ""  # the real path of the class folder being walked

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def images(self, top: Path) -> list[str]:
        """The image files under class folder `top` (real paths as found, not resolved), sorted as
        torchvision's make_dataset sorts them: by folder path, then by file name."""
        start = folder_key(top)
        self.walked.add(start)
        self.top_real = os.path.realpath(top)
        found: list[tuple[str, list[str]]] = []
        stack = [(str(top), ancestor_keys(top) | {start})]
        while stack:
            folder, above = stack.pop()
            files, subfolders = self._list(folder, above)
            found.append((folder, files))
            stack.extend(subfolders)
        found.sort(key=lambda item: item[0])
        return [os.path.join(folder, name) for folder, names in found for name in sorted(names)]

    def _list(
        self, folder: str, above: frozenset[Key]
    ) -> tuple[list[str], list[tuple[str, frozenset[Key]]]]:
        """(image file names, subfolders to walk with their ancestors) of one folder."""
        files: list[str] = []
        subfolders: list[tuple[str, frozenset[Key]]] = []
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)  # the same claims each run
        except OSError as exc:
            self.skipped.add(f"unreadable folder ({exc.strerror or exc})", self.rel(folder))
            return files, subfolders
        for entry in entries:
            kind, key = self._classify(entry, above)
            if kind == "file":
                files.append(entry.name)
            elif kind == "folder" and key is not None:
                self.walked.add(key)
                subfolders.append((entry.path, above | {key}))
            elif kind:
                self.skipped.add(kind, self.rel(entry.path))
        return files, subfolders

    def _classify(self, entry: os.DirEntry[str], above: frozenset[Key]) -> tuple[str, Key | None]:
        """'file', 'folder' (with its key), '' (not an image: ignored) or the kind skipped."""
        is_image = entry.name.lower().endswith(self.extensions)
        link = entry.is_symlink()
        if not link and entry.is_file(follow_symlinks=False):  # d_type: no system call
            return ("file" if is_image else ""), None
        try:
            info = os.stat(entry.path) if link else entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return DANGLING, None
        except OSError as exc:
            return (LOOP if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"), None
        if stat.S_ISDIR(info.st_mode):
            key = (info.st_dev, info.st_ino)
            if key in above:
                return LOOP, None
            if key in self.data_folders or (link and self._elsewhere_in_data(entry.path)):
                return OTHER_CLASS, None
            if key in self.walked:
                return TWICE, None
            return "folder", key
        if stat.S_ISREG(info.st_mode):
            return ("file" if is_image else ""), None
        return (special_kind(info.st_mode) if is_image else ""), None

    def _elsewhere_in_data(self, link: str) -> bool:
        """Whether a link leads into the data folder outside the class folder being walked."""
        real = os.path.realpath(link)
        return _inside(real, os.path.realpath(self.root)) and not _inside(real, self.top_real)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def folder_keys(folders: Iterable[Path]) -> frozenset[Key]:
    """The identities of those of `folders` that exist."""
    keys = set()
    for folder in folders:
        with contextlib.suppress(OSError):
            keys.add(folder_key(folder))
    return frozenset(keys)


@contextlib.contextmanager
def open_regular(path: str | os.PathLike[str]) -> Iterator[int]:
    """A read-only descriptor of the regular file at `path` (links followed); NotRegularFile for a
    FIFO, socket, device or folder, which is never opened (a FIFO's open would block)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise NotRegularFile(errno.EINVAL, "not a regular file", os.fspath(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else since the stat
            raise NotRegularFile(errno.EINVAL, "not a regular file", os.fspath(path))
        yield fd
    finally:
        os.close(fd)


def read_head(path: str | os.PathLike[str], count: int) -> tuple[int, bytes]:
    """(size in bytes, the first `count` bytes) of a regular file."""
    with open_regular(path) as fd:
        return os.fstat(fd).st_size, os.read(fd, count)


def read_all(path: str | os.PathLike[str]) -> bytes:
    """The whole content of a regular file."""
    with open_regular(path) as fd, open(fd, "rb", closefd=False) as handle:
        return handle.read()
