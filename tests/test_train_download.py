"""`--download` against tarballs served on 127.0.0.1: good, corrupted (md5), hostile (unsafe members)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading

import numpy as np
import pytest
from train_fixtures import single_thread, write_cifar10, write_model  # noqa: F401

from derive.cli import main
from derive.errors import UserError
from derive.train.data import load_cifar
from derive.train.download import check_member, download_cifar


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An HTTP server on loopback serving tmp_path/www; yields its base URL."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    httpd.shutdown()
    httpd.server_close()


def _tarball(path, add) -> str:
    """Write a .tar.gz built by `add(tar)`; return its md5."""
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return hashlib.md5(path.read_bytes()).hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, **fields: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def _good_cifar10(tmp_path, www):
    written = write_cifar10(tmp_path / "src", per_file=8, n_test=8)
    md5 = _tarball(
        www / "cifar-10-python.tar.gz",
        lambda t: t.add(written.folder, arcname="cifar-10-batches-py"),
    )
    return written, md5


def test_download_checks_md5_and_extracts(tmp_path, server):
    url, www = server
    written, md5 = _good_cifar10(tmp_path, www)
    target = tmp_path / "data"
    folder = download_cifar("cifar10", target, base_url=url, md5=md5)
    assert folder == target / "cifar-10-batches-py"
    assert sorted(p.name for p in target.iterdir()) == [
        "cifar-10-batches-py"
    ]  # no tarball, no staging left
    data = load_cifar("cifar10", target)
    np.testing.assert_array_equal(data.train_labels, written.train_labels)
    # already present: no second download (the server could be gone)
    (www / "cifar-10-python.tar.gz").unlink()
    assert download_cifar("cifar10", target, base_url=url, md5=md5) == folder


def test_md5_mismatch_leaves_nothing(tmp_path, server):
    url, www = server
    _good_cifar10(tmp_path, www)
    target = tmp_path / "fresh"
    with pytest.raises(
        UserError, match="md5 .* does not match the published c58f30108f718f92721af3b95e74349a"
    ):
        download_cifar("cifar10", target, base_url=url)  # the official md5 cannot match our tarball
    assert not target.exists()


def test_hostile_member_is_refused_and_nothing_written_outside(tmp_path, server):
    url, www = server
    md5 = _tarball(
        www / "cifar-10-python.tar.gz",
        lambda t: (
            _add_bytes(t, "cifar-10-batches-py/data_batch_1", b"x"),
            _add_bytes(t, "../evil", b"boom"),
        ),
    )
    target = tmp_path / "data"
    target.mkdir()
    with pytest.raises(UserError, match=r"refusing unsafe archive member '\.\./evil'"):
        download_cifar("cifar10", target, base_url=url, md5=md5)
    assert list(target.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "data" / "evil").exists()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "/etc/evil"}, "absolute path"),
        ({"name": "a/../../evil"}, r"'\.\.'"),
        (
            {
                "name": "cifar-10-batches-py/link",
                "type": tarfile.SYMTYPE,
                "linkname": "../../etc/passwd",
            },
            "points outside",
        ),
        (
            {
                "name": "cifar-10-batches-py/link",
                "type": tarfile.SYMTYPE,
                "linkname": "/etc/passwd",
            },
            "points outside",
        ),
        (
            {"name": "cifar-10-batches-py/hard", "type": tarfile.LNKTYPE, "linkname": "../x"},
            "points outside",
        ),
        ({"name": "cifar-10-batches-py/dev", "type": tarfile.CHRTYPE}, "not a regular file"),
        ({"name": "cifar-10-batches-py/fifo", "type": tarfile.FIFOTYPE}, "not a regular file"),
    ],
)
def test_unsafe_members_are_refused(fields, message):
    info = tarfile.TarInfo(fields.pop("name"))
    for key, value in fields.items():
        setattr(info, key, value)
    with pytest.raises(UserError, match=message):
        check_member(info)


def test_links_inside_are_allowed():
    info = tarfile.TarInfo("cifar-10-batches-py/alias")
    info.type, info.linkname = tarfile.SYMTYPE, "data_batch_1"
    check_member(info)


def test_cli_download_then_train(tmp_path, server, monkeypatch, capsys):
    url, www = server
    written, md5 = _good_cifar10(tmp_path, www)
    model = write_model(tmp_path / "tiny.py")
    monkeypatch.setenv("DERIVE_CIFAR_URL", url)
    monkeypatch.setenv("DERIVE_CIFAR_MD5", md5)
    argv = [
        "train",
        str(model),
        "--data-dir",
        str(tmp_path / "d"),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
    ]
    assert main([*argv, "--download", "--progress-interval", "0"]) == 0
    assert (tmp_path / "d" / "cifar-10-batches-py" / "test_batch").is_file()
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 2


def test_cli_corrupt_download_exits_2_and_leaves_nothing(tmp_path, server, monkeypatch, capsys):
    url, www = server
    _good_cifar10(tmp_path, www)
    monkeypatch.setenv("DERIVE_CIFAR_MD5", "0" * 32)
    out, data = tmp_path / "run", tmp_path / "d"
    code = main(
        [
            "train",
            str(write_model(tmp_path / "tiny.py")),
            "--data-dir",
            str(data),
            "--out",
            str(out),
            "--download",
            "--download-url",
            url,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "does not match" in err and err.count("\n") == 1
    assert not data.exists() and not out.exists()
