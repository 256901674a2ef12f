"""`derive train --dataset imagenet` on hostile ImageFolder trees: symlink loops, links into other
classes, FIFOs, dangling links, and JPEGs whose header is right but whose body is garbage."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torchvision", reason="the imagenet extra: pip install 'derive[imagenet]'")

from ddp_fixtures import write_imagefolder
from train_fixtures import loader_workers_stopped, single_thread, write_model  # noqa: F401

from derive.cli import main
from derive.errors import UserError
from derive.train import imagenet as inet
from derive.train.imagescan import NotRegularFile, read_all

SIZE = ["--image-size", "32"]
A = "n01440764"  # the first class of write_imagefolder
B = "n01443537"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write_imagefolder(tmp_path / "data", per_class=(4, 2))
    write_model(tmp_path / "tiny.py")
    return tmp_path


def _images(split: Path) -> dict[str, str]:
    """Relative path -> class folder of every real (non-link) image file under `split`."""
    found = {}
    for folder, _, files in os.walk(split):  # links not followed
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                found[str(path.relative_to(split.parent))] = path.relative_to(split).parts[0]
    return found


def _scan(data: Path, split: str = "train") -> inet.ImageIndex:
    classes = inet.scan_classes(data)
    return inet.scan_split(data, split, classes)


def _argv(root: Path, out: Path | None = None, *extra: str) -> list[str]:
    return [
        "train",
        str(root / "tiny.py"),
        "--dataset",
        "imagenet",
        "--data-dir",
        str(root / "data"),
        "--out",
        str(out or root / "run"),
        "--progress-interval",
        "0",
        *SIZE,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        *extra,
    ]


def _cli(root: Path, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m derive ARGV` in a child process: a hang fails the test instead of the suite."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "derive", *argv],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def _within(seconds: float, *fifos: Path) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block runs longer than `seconds`; a thread or
    DataLoader worker blocked opening one of `fifos` is let go first (by opening its other end)."""

    def expire(signum: int, frame: object) -> None:
        for fifo in fifos:
            with contextlib.suppress(OSError):  # ENXIO: nobody is waiting on it
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _assert_labels_match_folders(index: inet.ImageIndex, classes: list[str]) -> None:
    for path, label in zip(index.paths, index.labels, strict=True):
        assert Path(path).parts[1] == classes[label], path


def test_a_link_to_the_parent_folder_is_skipped_and_named_once(tree):
    data = tree / "data"
    expected = _images(data / "train")
    os.symlink("..", data / "train" / A / "loop")
    index = _scan(data)
    assert sorted(index.paths) == sorted(expected)  # each image once, none relabelled
    _assert_labels_match_folders(index, inet.scan_classes(data))
    assert index.skipped.counts == {"symlink loop": 1}
    assert index.skipped.first == f"train/{A}/loop"


def test_self_links_do_not_make_the_scan_explode(tree):
    data = tree / "data"
    expected = _images(data / "train")
    sub = data / "train" / A / "sub"
    sub.mkdir()
    for folder in (data / "train" / A, sub):
        os.symlink(".", folder / "self1")
        os.symlink(".", folder / "self2")
    os.symlink("../..", sub / "up")
    with _within(10):  # following the links would take 2^depth walks
        index = _scan(data)
    assert sorted(index.paths) == sorted(expected)
    assert index.skipped.counts == {"symlink loop": 5}


def test_links_into_another_class_folder_are_not_relabelled(tree):
    data = tree / "data"
    expected = _images(data / "train")
    (data / "train" / B / "sub").mkdir()
    (data / "train" / B / "sub" / "extra.JPEG").write_bytes(
        next((data / "train" / B).glob("*.JPEG")).read_bytes()
    )
    expected[f"train/{B}/sub/extra.JPEG"] = B
    os.symlink(f"../{B}", data / "train" / A / "other")
    os.symlink(f"../{B}/sub", data / "train" / A / "other-sub")
    os.symlink(f"../../val/{A}", data / "train" / A / "val-images")
    index = _scan(data)
    assert sorted(index.paths) == sorted(expected)
    _assert_labels_match_folders(index, inet.scan_classes(data))
    assert index.skipped.counts == {"link to another class folder": 3}


def test_links_out_of_the_tree_are_followed_once(tree, tmp_path):
    """A subset built of links (class folders, files, a folder of images) still trains."""
    data = tree / "data"
    outside = tmp_path / "elsewhere"
    (outside / "more").mkdir(parents=True)
    image = next((data / "train" / A).glob("*.JPEG"))
    (outside / "more" / "x.JPEG").write_bytes(image.read_bytes())
    os.symlink(outside / "more", data / "train" / A / "more1")
    os.symlink(outside / "more", data / "train" / A / "more2")  # the same folder again
    os.symlink(outside / "more" / "x.JPEG", data / "train" / B / "linked.JPEG")
    index = _scan(data)
    assert f"train/{A}/more1/x.JPEG" in index.paths
    assert f"train/{A}/more2/x.JPEG" not in index.paths
    assert f"train/{B}/linked.JPEG" in index.paths
    assert index.skipped.counts == {"folder reached twice": 1}


def test_a_dangling_link_is_skipped_with_one_warning_line(tree, capsys, caplog):
    os.symlink("nowhere.JPEG", tree / "data" / "train" / A / "gone.JPEG")
    assert main(_argv(tree, None, "--workers", "0")) == 0
    assert "internal error" not in capsys.readouterr().err
    warned = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert warned == [
        "ImageNet data: skipped 1 entry that is not a regular image file (1 dangling link), "
        f"e.g. 'train/{A}/gone.JPEG'"
    ]


@pytest.mark.usefixtures("loader_workers_stopped")
def test_a_fifo_named_like_an_image_is_never_opened(tree, caplog):
    """In this process, guarded by an alarm: a FIFO that were opened would block forever."""
    fifos = (tree / "data" / "train" / A / "x.JPEG", tree / "data" / "val" / A / "y.JPEG")
    for fifo in fifos:
        os.mkfifo(fifo)
    with _within(120, *fifos):
        assert main(_argv(tree, None, "--workers", "1")) == 0
    warned = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warned) == 1 and "(2 FIFOs)" in warned[0], warned


@pytest.mark.slow
def test_a_fifo_named_like_an_image_is_never_opened_by_the_cli(tree):
    os.mkfifo(tree / "data" / "train" / A / "x.JPEG")
    os.mkfifo(tree / "data" / "val" / A / "y.JPEG")
    done = _cli(tree, _argv(tree, None, "--workers", "1"))
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "skipped" in line]
    assert len(warned) == 1 and "(2 FIFOs)" in warned[0], done.stderr


def test_a_fifo_swapped_in_after_the_scan_is_refused_not_opened(tree):
    path = tree / "data" / "train" / A / "late.JPEG"
    os.mkfifo(path)
    with _within(10, path), pytest.raises(NotRegularFile):
        read_all(path)
    with _within(10, path), pytest.raises(UserError, match="cannot be read: not a regular file"):
        inet.check_signatures(tree / "data", [f"train/{A}/late.JPEG"])


@pytest.mark.parametrize(
    "link, message",
    [
        (".", "is a link to a folder that holds the data itself"),
        ("../..", "is a link to a folder that holds the data itself"),
        (B, "are the same folder"),
    ],
)
def test_a_class_folder_that_links_back_is_refused_in_one_line(tree, capsys, link, message):
    os.symlink(link, tree / "data" / "train" / "n09999999")
    assert main(_argv(tree)) == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1, err
    assert message in err, err
    assert not (tree / "run").exists()


def _garble(data: Path) -> None:
    """Keep each JPEG's first 20 bytes (a valid signature and header start), replace the rest."""
    for path in data.rglob("*.JPEG"):
        body = path.read_bytes()
        noise = bytes((i * 151 + 89) % 256 for i in range(len(body) - 20))
        path.write_bytes(body[:20] + noise)


@pytest.mark.usefixtures("loader_workers_stopped")
def test_garbage_bodies_exit_2_in_one_line_before_the_run_folder(tree, capfd):
    _garble(tree / "data")
    out = tree / "new" / "run"
    with _within(120):
        assert main(_argv(tree, out, "--workers", "1")) == 2
    err = capfd.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1, err
    assert "images tried could be decoded" in err and "data is damaged" in err
    assert not (tree / "new").exists()


@pytest.mark.slow
def test_garbage_bodies_exit_2_in_one_line_from_the_cli(tree):
    _garble(tree / "data")
    out = tree / "new" / "run"
    done = _cli(tree, _argv(tree, out, "--workers", "1"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("derive: error:") and done.stderr.count("\n") == 1, done.stderr
    assert "images tried could be decoded" in done.stderr and "data is damaged" in done.stderr
    assert not (tree / "new").exists()


@pytest.mark.usefixtures("loader_workers_stopped")
def test_damage_found_mid_epoch_removes_the_new_run_folder(tree, capfd, monkeypatch):
    monkeypatch.setattr(inet, "PROBE", 0)  # let the damage surface in the DataLoader workers
    _garble(tree / "data")
    out = tree / "new" / "run"
    assert main(_argv(tree, out, "--workers", "1")) == 2
    err = capfd.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1, err
    assert "images in a row could not be decoded" in err
    assert not (tree / "new").exists()


def test_damage_found_mid_epoch_keeps_a_folder_that_existed(tree, capfd, monkeypatch):
    monkeypatch.setattr(inet, "PROBE", 0)
    _garble(tree / "data")
    out = tree / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert main(_argv(tree, out, "--workers", "0")) == 2
    assert (out / "notes.txt").read_text() == "mine\n"
