"""Hostile CIFAR batch files: each is refused with one line naming the file, in bounded memory."""

from __future__ import annotations

import codecs
import pickle
import tracemalloc

import numpy as np
import pytest
from train_fixtures import single_thread, write_cifar10, write_model  # noqa: F401

from derive.cli import main
from derive.errors import UserError
from derive.train.data import load_cifar


def _rewrite(path, changes):
    """Replace some keys of the pickled batch at `path` (protocol 2, as the official files)."""
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    batch.update(changes)
    path.write_bytes(pickle.dumps(batch, protocol=2))


def _shared_lists(rows: int, width: int) -> list[list[list[int]]]:
    """`rows` labels, each the same list of `width` references to one list of `width` ints.

    A small pickle (each list is written once) that numpy would expand to rows * width**2 ints.
    """
    inner = [i % 10 for i in range(width)]
    return [[inner] * width] * rows


class _HugeArray:
    """Pickles as numpy's array placeholder with a huge shape (as if a tiny file asked for 1 TiB)."""

    def __reduce__(self):
        return (np.zeros(0).__reduce__()[0], (np.ndarray, (2**40,), b"b"))


class _Uninitialised:
    """Pickles as `numpy.ndarray((rows, 3072), 'u1')`: image rows the file does not hold."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def __reduce__(self):
        return (np.ndarray, ((self.rows, 3072), "u1"))


class _Hex:
    """Pickles as `_codecs.encode(inner, 'hex')`: each level doubles, so 40 levels are 2**40 bytes."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __reduce__(self):
        inner = _Hex(self.depth - 1) if self.depth > 1 else b"ab"
        return (codecs.encode, (inner, "hex"))


@pytest.fixture
def written(tmp_path):
    return write_cifar10(tmp_path, per_file=10, n_test=10)


def _refused(tmp_path, name: str, *patterns: str) -> str:
    """load_cifar's one-line UserError, which must name the file `name` and match every pattern."""
    with pytest.raises(UserError) as info:
        load_cifar("cifar10", tmp_path)
    message = str(info.value)
    assert "\n" not in message and name in message, message
    for pattern in patterns:
        assert pattern in message, message
    return message


def test_a_label_too_large_for_int64_is_out_of_range(tmp_path, written):
    _rewrite(written.folder / "data_batch_1", {b"labels": [0] * 9 + [2**70]})
    _refused(tmp_path, "data_batch_1", "label <71-bit integer> outside 0..9", "image 9")


def test_a_label_of_thousands_of_digits_is_described_by_its_size(tmp_path, written):
    _rewrite(written.folder / "data_batch_1", {b"labels": [10**5000] + [0] * 9})
    message = _refused(tmp_path, "data_batch_1", "outside 0..9")
    assert len(message) < 300


@pytest.mark.parametrize("label, shown", [(2.7, "2.7"), (2.0, "2.0"), (True, "True")])
def test_a_label_that_is_not_an_int_is_refused_not_truncated(tmp_path, written, label, shown):
    _rewrite(written.folder / "test_batch", {b"labels": [1, 2, label] + [0] * 7})
    _refused(tmp_path, "test_batch", f"label of image 2 is {shown}, not an integer")


def test_shared_nested_label_lists_are_refused_without_expanding_them(tmp_path, written):
    """10 labels of 4,096 x 4,096 shared ints: 30 KB on disk, 1.3 GB as an int64 array."""
    labels = _shared_lists(10, 2**12)
    _rewrite(written.folder / "data_batch_3", {b"labels": labels})
    assert (written.folder / "data_batch_3").stat().st_size < 200_000
    tracemalloc.start()
    try:
        _refused(tmp_path, "data_batch_3", "label of image 0 is a list, not an integer")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000, f"reading the labels took {peak:,} bytes"


def test_labels_that_are_not_a_list_are_refused(tmp_path, written):
    _rewrite(written.folder / "data_batch_2", {b"labels": {"a": 1}})
    _refused(tmp_path, "data_batch_2", "labels are a dict")


def test_a_huge_array_placeholder_is_refused_before_it_is_allocated(tmp_path, written):
    (written.folder / "data_batch_4").write_bytes(
        pickle.dumps({b"data": _HugeArray(), b"labels": []}, protocol=2)
    )
    _refused(tmp_path, "data_batch_4", "not a CIFAR batch")


def test_an_array_built_by_calling_ndarray_is_refused(tmp_path, written):
    """3 MB of images from a 2 KB file (uninitialised memory) must not pass as a batch."""
    batch = {b"data": _Uninitialised(1000), b"labels": [0] * 1000}
    (written.folder / "data_batch_4").write_bytes(pickle.dumps(batch, protocol=2))
    _refused(tmp_path, "data_batch_4", "not a CIFAR batch")


def test_a_chain_of_doubling_codecs_is_refused(tmp_path, written):
    (written.folder / "data_batch_5").write_bytes(
        pickle.dumps({b"data": _Hex(40), b"labels": []}, protocol=2)
    )
    _refused(tmp_path, "data_batch_5", "not a CIFAR batch", "hex")


@pytest.mark.parametrize(
    "batch",
    [{1: b"x", b"labels": []}, {"\udc80": b"x"}, {f"k{i}": i for i in range(10_000)}],
    ids=["mixed-key-types", "unencodable-key", "many-keys"],
)
def test_a_dict_without_the_batch_keys_is_named_in_one_short_line(tmp_path, written, batch):
    (written.folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=4))
    message = _refused(tmp_path, "data_batch_2", "expected keys b'data' and b'labels'")
    assert len(message) < 400


def test_integer_array_labels_of_a_repickled_copy_are_still_read(tmp_path, written):
    labels = np.asarray(written.train_labels[:10], dtype=np.int16)
    _rewrite(written.folder / "data_batch_1", {b"labels": labels})
    data = load_cifar("cifar10", tmp_path)
    np.testing.assert_array_equal(data.train_labels, written.train_labels)
    assert data.train_labels.dtype == np.int64


@pytest.mark.parametrize(
    "labels, pattern",
    [
        (np.full(10, 2.5), "not an integer"),
        (np.zeros((10, 1), dtype=np.int64), "shape (10, 1)"),
        (np.full(10, 2**63, dtype=np.uint64), "outside 0..9"),
    ],
    ids=["float", "2-d", "uint64-huge"],
)
def test_array_labels_must_be_one_row_of_integers_in_range(tmp_path, written, labels, pattern):
    _rewrite(written.folder / "data_batch_1", {b"labels": labels})
    _refused(tmp_path, "data_batch_1", pattern)


def test_the_cli_says_one_line_and_exits_2(tmp_path, written, capsys):
    _rewrite(written.folder / "data_batch_1", {b"labels": [2.7] * 10})
    model = write_model(tmp_path / "tiny.py")
    argv = ["train", str(model), "--data-dir", str(tmp_path), "--out", str(tmp_path / "run")]
    assert main([*argv, "--epochs", "1", "--progress-interval", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data_batch_1" in err and "2.7" in err, err
    assert not (tmp_path / "run").exists()
