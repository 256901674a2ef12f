"""`--download`: fetch the official CIFAR tarball, check its published md5, extract it safely.

Nothing is left behind on failure: the tarball is streamed into a private temporary folder inside the
data directory, checked, unpacked there, and only the dataset folder is moved into place at the end.
Members with absolute paths or `..`, links that point outside, and device files are refused.

The base URL can be changed for mirrors and tests with `--download-url` or DERIVE_CIFAR_URL;
DERIVE_CIFAR_MD5 replaces the published md5 (a repackaged mirror, or a test serving its own tarball).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from derive.errors import UserError
from derive.train.data import dataset_spec, find_cifar_folder

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz"
URL_ENV = "DERIVE_CIFAR_URL"
MD5_ENV = "DERIVE_CIFAR_MD5"
CHUNK = 1 << 20


def download_url(base_url: str | None = None) -> str:
    """The base URL in force: the argument, else DERIVE_CIFAR_URL, else the official site."""
    return (base_url or os.environ.get(URL_ENV) or OFFICIAL_URL).rstrip("/")


def download_cifar(
    name: str, data_dir: str | Path, base_url: str | None = None, md5: str | None = None
) -> Path:
    """Make sure `data_dir` holds dataset `name`, downloading it if needed; return the dataset folder.

    Raises UserError for network errors, an md5 mismatch, or an unsafe or unexpected archive;
    in every failing case `data_dir` is left as it was (created only if it did not exist).
    """
    spec = dataset_spec(name)
    root = Path(data_dir).expanduser()
    found = find_cifar_folder(name, root)
    if found is not None:
        log.info("%s already present in %s; not downloading", name, found)
        return found
    if (root / spec.folder).exists():
        raise UserError(
            f"{str(root / spec.folder)!r} exists but is incomplete; move it away before --download"
        )
    expected = (md5 or os.environ.get(MD5_ENV) or spec.md5).lower()
    url = f"{download_url(base_url)}/{spec.archive}"
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create data directory {str(root)!r}: {exc.strerror or exc}"
        ) from None
    stage = Path(tempfile.mkdtemp(prefix=".derive-download-", dir=root))
    try:
        archive = stage / spec.archive
        digest = _fetch(url, archive)
        if digest != expected:
            raise UserError(
                f"{url}: md5 {digest} does not match the published {expected}; nothing kept"
            )
        extract_dir = stage / "x"
        extract_dir.mkdir()
        safe_extract(archive, extract_dir)
        unpacked = extract_dir / spec.folder
        if find_cifar_folder(name, unpacked) != unpacked:
            raise UserError(
                f"{url}: the archive does not contain {spec.folder}/ with the expected files"
            )
        os.replace(unpacked, root / spec.folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                root.rmdir()
        raise
    shutil.rmtree(stage, ignore_errors=True)
    log.info("extracted %s into %s", spec.archive, root / spec.folder)
    return root / spec.folder


def _fetch(url: str, target: Path) -> str:
    """Stream `url` into `target`; return the md5 of what arrived. Progress on stderr, throttled."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise UserError(f"download URL must be http(s), got {url!r}")
    log.info("downloading %s", url)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, last = 0, time.monotonic()
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if time.monotonic() - last > 2.0 and sys.stderr.isatty():
                    last = time.monotonic()
                    size = f"/{total / 1e6:.1f}" if total else ""
                    print(f"\r  {done / 1e6:.1f}{size} MB", end="", file=sys.stderr, flush=True)
    except urllib.error.HTTPError as exc:
        raise UserError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UserError(f"download of {url} failed: {reason}") from None
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return digest.hexdigest()


def check_member(member: tarfile.TarInfo) -> None:
    """Raise UserError unless `member` is a plain file or folder (or a link) that stays inside the target."""
    name = member.name
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise UserError(f"refusing unsafe archive member {name!r} (absolute path or '..')")
    if member.isdev() or not (
        member.isfile() or member.isdir() or member.issym() or member.islnk()
    ):
        raise UserError(f"refusing archive member {name!r}: not a regular file or folder")
    if member.issym() or member.islnk():
        target = member.linkname
        base = posixpath.dirname(posixpath.normpath(name)) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise UserError(f"refusing archive member {name!r}: link to {target!r} points outside")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a (gzipped) tarball into `dest` after checking every member; the `data` filter on top."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # Python without extraction filters: our own checks above are the guard
                tar.extractall(dest, members=members)  # noqa: S202
    except tarfile.TarError as exc:
        raise UserError(f"{archive.name} is not a readable tar archive: {exc}") from None
