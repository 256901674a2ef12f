"""The CIFAR loader: official layout, any number of rows, clear errors, safe unpickling, exact statistics."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from train_fixtures import REAL_HEAD, write_cifar10, write_cifar100

from derive.errors import UserError
from derive.train.data import channel_stats, load_cifar


def test_cifar10_rows_become_channel_planar_images(tmp_path):
    written = write_cifar10(tmp_path, per_file=37, n_test=23)  # any number of rows per file
    data = load_cifar("cifar10", tmp_path)
    assert data.train_images.shape == (5 * 37, 3, 32, 32) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (23, 3, 32, 32)
    assert data.num_classes == 10 and data.files["data_batch_3"] == 37
    np.testing.assert_array_equal(data.train_labels, written.train_labels)
    np.testing.assert_array_equal(data.test_labels, written.test_labels)
    # byte c*1024 + y*32 + x of a row is channel c, row y, column x (channel-planar, row-major)
    rng = np.random.default_rng(5)
    for _ in range(50):
        i, c, y, x = (
            rng.integers(0, len(written.train_rows)),
            rng.integers(0, 3),
            *rng.integers(0, 32, 2),
        )
        assert data.train_images[i, c, y, x] == written.train_rows[i, c * 1024 + y * 32 + x]


def test_data_dir_may_be_the_batches_folder_itself(tmp_path):
    written = write_cifar10(tmp_path, per_file=5, n_test=4)
    data = load_cifar("cifar10", written.folder)
    assert data.folder == written.folder and len(data.train_labels) == 25


def test_str_keys_of_a_repickled_copy_are_read_like_the_official_bytes_keys(tmp_path):
    written = write_cifar10(tmp_path, per_file=6, n_test=5)
    for (
        path
    ) in written.folder.iterdir():  # as a Python 3 script that re-saves the batches writes them
        batch = pickle.loads(path.read_bytes())
        path.write_bytes(pickle.dumps({k.decode(): v for k, v in batch.items()}, protocol=4))
    data = load_cifar("cifar10", tmp_path)
    np.testing.assert_array_equal(data.train_labels, written.train_labels)
    assert data.train_images[3, 1, 2, 7] == written.train_rows[3, 1024 + 2 * 32 + 7]


def test_cifar100_reads_fine_labels(tmp_path):
    written = write_cifar100(tmp_path, n_train=120, n_test=30)
    data = load_cifar("cifar100", tmp_path)
    assert data.num_classes == 100
    np.testing.assert_array_equal(data.train_labels, written.train_labels)
    np.testing.assert_array_equal(data.test_images.reshape(30, -1), written.test_rows)


def _rewrite(path, changes):
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    batch.update(changes)
    path.write_bytes(pickle.dumps(batch, protocol=4))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "data_batch_4").unlink(), "'data_batch_4' is missing"),
        (
            lambda f: (f / "test_batch").write_bytes((f / "test_batch").read_bytes()[:5000]),
            "truncated",
        ),
        (
            lambda f: _rewrite(f / "data_batch_2", {b"data": np.zeros((10, 3000), np.uint8)}),
            "rows of 3072 bytes",
        ),
        (
            lambda f: _rewrite(f / "data_batch_2", {b"data": np.zeros((10, 3072), np.float32)}),
            "uint8",
        ),
        (
            lambda f: _rewrite(f / "data_batch_1", {b"labels": [1, 2, 3]}),
            "10 image rows but 3 labels",
        ),
        (lambda f: _rewrite(f / "data_batch_1", {b"labels": [10] * 10}), "label 10 outside 0..9"),
        (
            lambda f: (f / "data_batch_5").write_bytes(pickle.dumps([1, 2, 3])),
            "not a cifar10 batch",
        ),
        (lambda f: (f / "data_batch_5").write_bytes(b"not a pickle at all"), "not a CIFAR batch"),
    ],
)
def test_damaged_files_give_one_clear_error(tmp_path, damage, message):
    written = write_cifar10(tmp_path, per_file=10, n_test=10)
    damage(written.folder)
    with pytest.raises(UserError, match=message) as info:
        load_cifar("cifar10", tmp_path)
    assert "\n" not in str(info.value)


def test_missing_dataset_folder_names_what_is_expected(tmp_path):
    with pytest.raises(UserError, match="cifar-10-batches-py.*--download"):
        load_cifar("cifar10", tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_cifar("cifar10", tmp_path / "nowhere")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    written = write_cifar10(tmp_path, per_file=10, n_test=10)
    (written.folder / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(UserError, match="refusing to load global builtins.print"):
        load_cifar("cifar10", tmp_path)
    assert "pwned" not in capsys.readouterr().out


def test_channel_stats_match_float64_numpy(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(300, 3, 32, 32), dtype=np.uint8)
    images[:, 1] //= 3  # make the channels differ
    mean, std = channel_stats(images)
    x = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.skipif(
    not REAL_HEAD.is_dir(), reason="real CIFAR-10 head not present at ../shared/data"
)
def test_real_cifar10_head_matches_its_provenance():
    data = load_cifar("cifar10", REAL_HEAD)
    assert data.train_images.shape == (5085, 3, 32, 32) and data.test_images.shape == (
        1017,
        3,
        32,
        32,
    )
    assert tuple(data.train_images[0, :, 0, 0]) == (59, 62, 63) and data.train_labels[0] == 6
    assert tuple(data.test_images[0, :, 0, 0]) == (158, 112, 49) and data.test_labels[0] == 3
    assert list(data.train_labels[:10]) == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert list(np.bincount(data.train_labels)) == [
        517,
        524,
        490,
        493,
        537,
        475,
        503,
        516,
        529,
        501,
    ]
    assert list(np.bincount(data.test_labels)) == [105, 93, 100, 104, 92, 87, 114, 102, 110, 110]
    mean, std = channel_stats(data.train_images)
    np.testing.assert_allclose(mean, [0.493607, 0.484597, 0.448276], atol=1e-6)
    np.testing.assert_allclose(std, [0.248141, 0.244552, 0.262132], atol=1e-6)
