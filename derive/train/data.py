"""CIFAR-10/100 from the official python layout, read safely and checked.

    data = load_cifar("cifar10", "~/data")   # or the cifar-10-batches-py folder itself
    data.train_images  # uint8, N x 3 x 32 x 32 (channel-planar R, G, B as stored)

The official files are pickles. `pickle.load` on a downloaded file can run arbitrary code, so they are
read with an unpickler that resolves only what a CIFAR batch needs (a dict of bytes, lists of ints and
a numpy uint8 array), builds nothing the file's bytes do not hold, and refuses anything else. Batch
files may hold any number of rows (the 10 % subset has 1,017 per file): what is checked is that rows
have 3,072 bytes and that the labels are a flat list of ints (or a 1-D integer array), one per row,
each a class of the dataset.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from derive.errors import UserError

ROW_BYTES = 3 * 32 * 32


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant lives and how its files are keyed."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    archive: str
    md5: str


DATASETS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        name="cifar10",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        label_key=b"labels",
        num_classes=10,
        archive="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": CifarSpec(
        name="cifar100",
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        label_key=b"fine_labels",
        num_classes=100,
        archive="cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
}


@dataclass
class CifarData:
    """A CIFAR dataset in memory: uint8 images (N x 3 x 32 x 32) and int64 labels, on the host."""

    name: str
    num_classes: int
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    folder: Path
    files: dict[str, int] = field(default_factory=dict)  # file name -> rows read

    def fingerprint(self) -> str:
        """A short hash of every image and label, so a resumed run can tell it has the same data."""
        digest = hashlib.blake2b(digest_size=16)
        for array in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()


def dataset_spec(name: str) -> CifarSpec:
    """The spec for 'cifar10' or 'cifar100'; UserError otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}") from None


def find_cifar_folder(name: str, data_dir: str | Path) -> Path | None:
    """The folder holding the batch files: DIR/<official folder>, or DIR itself if it holds them."""
    spec = dataset_spec(name)
    root = Path(data_dir).expanduser()
    for candidate in (root / spec.folder, root):
        if all((candidate / f).is_file() for f in spec.train_files + spec.test_files):
            return candidate
    return None


def load_cifar(name: str, data_dir: str | Path) -> CifarData:
    """Read CIFAR-10 or CIFAR-100 from `data_dir` (the parent of the official folder, or the folder).

    Raises UserError with one clear line for a missing folder or file, a truncated or foreign pickle,
    rows that are not 3,072 bytes, labels that do not match the rows or lie outside the classes.
    """
    spec = dataset_spec(name)
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise UserError(
            f"data directory {str(root)!r} does not exist (add --download to fetch {name})"
        )
    folder = find_cifar_folder(name, root)
    if folder is None:
        names = spec.train_files + spec.test_files
        for base in (root / spec.folder, root):
            if base.is_dir() and (
                base == root / spec.folder or any((base / f).exists() for f in names)
            ):
                missing = next(f for f in names if not (base / f).is_file())
                raise UserError(
                    f"{name} data in {str(base)!r} is incomplete: {missing!r} is missing"
                )
        raise UserError(
            f"no {name} data in {str(root)!r}: expected the folder {str(root / spec.folder)!r} holding "
            f"{', '.join(names)} (add --download to fetch it)"
        )
    files: dict[str, int] = {}
    train = [_read_batch(folder / f, spec) for f in spec.train_files]
    test = [_read_batch(folder / f, spec) for f in spec.test_files]
    for fname, (images, _) in zip(spec.train_files + spec.test_files, train + test, strict=True):
        files[fname] = int(images.shape[0])
    train_images = np.concatenate([t[0] for t in train])
    test_images = np.concatenate([t[0] for t in test])
    if len(train_images) == 0 or len(test_images) == 0:
        raise UserError(f"{name} in {str(folder)!r} has no training or no test images")
    return CifarData(
        name=name,
        num_classes=spec.num_classes,
        train_images=train_images,
        train_labels=np.concatenate([t[1] for t in train]),
        test_images=test_images,
        test_labels=np.concatenate([t[1] for t in test]),
        folder=folder,
        files=files,
    )


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) standard deviation of uint8 N x 3 x H x W images, in [0, 1] units.

    Exact: computed from a 256-bin histogram per channel, in float64.
    """
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].reshape(-1), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = float((counts * values).sum() / total)
        var = float((counts * (values - mean) ** 2).sum() / total)
        means.append(mean / 255.0)
        stds.append(var**0.5 / 255.0)
    return means, stds


_NUMPY_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's own, whatever its module path


class _NdarrayType:
    """What `numpy.ndarray` resolves to: only a name for the reconstructor, never a constructor
    (calling numpy.ndarray(shape) would allocate memory the file does not hold)."""


def _empty_array(subtype: object, shape: object, dtype: object) -> np.ndarray:
    """numpy's array reconstructor, for the empty placeholder that numpy pickles (filled from bytes next).

    Any other shape would allocate memory that the file does not hold, so it is refused.
    """
    if not isinstance(subtype, _NdarrayType) or not isinstance(shape, tuple) or shape != (0,):
        raise pickle.UnpicklingError(f"refusing an array placeholder of shape {_short(shape)}")
    return _NUMPY_RECONSTRUCT(np.ndarray, shape, dtype)


def _latin1(text: object, encoding: object = "latin1", errors: object = "strict") -> bytes:
    """`_codecs.encode(str, 'latin1')`, how Python 3 pickles bytes under protocol 2; no other codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError(f"refusing to encode with codec {_short(encoding)}")
    return text.encode("latin1")


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only the globals a pickled CIFAR batch uses, each bounded by the file's own bytes.

    Only what the file holds gets built: an array placeholder is always empty and bytes come only
    from latin-1 text, so memory stays proportional to the file's size.
    """

    _ALLOWED: dict[tuple[str, str], object] = {
        ("numpy.core.multiarray", "_reconstruct"): _empty_array,
        ("numpy._core.multiarray", "_reconstruct"): _empty_array,
        ("numpy", "ndarray"): _NdarrayType(),
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _short(value: object, chars: int = 40) -> str:
    """repr(value) cut to `chars` characters; an int too long to print is described by its size."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"<{value.bit_length()}-bit integer>"
    if not isinstance(value, (int, float, str, bytes, tuple)):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= chars else text[: chars - 3] + "..."


def _unpickle(path: Path) -> object:
    """The unpickled contents of `path`; UserError if unreadable, truncated, foreign or hostile."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    try:
        return _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # a hostile pickle can raise nearly any type; all mean "not a batch"
        truncated = isinstance(exc, EOFError) or "truncated" in str(exc)
        kind = "truncated" if truncated else "not a CIFAR batch"
        detail = str(exc).splitlines()[0][:200] if str(exc).strip() else ""
        raise UserError(f"{str(path)!r} is {kind} ({type(exc).__name__}: {detail})") from None


def _batch_dict(path: Path, batch: object, spec: CifarSpec) -> dict[object, object]:
    """The batch as a dict with bytes keys (a re-pickled copy may have str keys), holding both keys."""
    if isinstance(batch, dict):
        batch = {
            (k.encode("utf-8", "replace") if isinstance(k, str) else k): v for k, v in batch.items()
        }
    if not isinstance(batch, dict) or b"data" not in batch or spec.label_key not in batch:
        if isinstance(batch, dict):
            shown = [_short(k, 20) for k in list(batch)[:5]]
            found = f"keys {', '.join(shown)}" + (
                f" and {len(batch) - 5} more" if len(batch) > 5 else ""
            )
        else:
            found = f"a {type(batch).__name__}"
        raise UserError(
            f"{str(path)!r} is not a {spec.name} batch: expected keys b'data' and {spec.label_key!r}, "
            f"found {found or 'no keys'}"
        )
    return batch


def _images(path: Path, data: object) -> np.ndarray:
    """b'data' as n x 3 x 32 x 32 uint8 images; UserError unless it is uint8 rows of 3,072 bytes."""
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != ROW_BYTES
    ):
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise UserError(
            f"{str(path)!r}: b'data' is {dtype} with shape {shape}, expected uint8 rows of {ROW_BYTES} bytes"
        )
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32))


def _labels(path: Path, labels: object, rows: int, spec: CifarSpec) -> np.ndarray:
    """The labels as int64: a flat list of ints (or a 1-D integer array), one per row, each a class."""
    where = f"{str(path)!r}: {spec.label_key!r}"
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1:
            raise UserError(f"{where} has shape {labels.shape}, expected one label per image row")
        if labels.dtype.kind not in "iu":
            raise UserError(f"{where} holds {labels.dtype} values: a label is not an integer")
    elif not isinstance(labels, list):
        raise UserError(
            f"{where}: labels are a {type(labels).__name__}, expected a list of integers"
        )
    if len(labels) != rows:
        raise UserError(f"{str(path)!r}: {rows} image rows but {len(labels)} labels")
    if isinstance(labels, list):
        for i, label in enumerate(labels):
            if type(label) is not int:  # bool and float are refused, not truncated
                raise UserError(
                    f"{where}: the label of image {i} is {_short(label)}, not an integer"
                )
    outside = [i for i, v in enumerate(labels) if not 0 <= v < spec.num_classes][:1]
    if outside:
        raise UserError(
            f"{str(path)!r}: label {_short(int(labels[outside[0]]))} outside "
            f"0..{spec.num_classes - 1} for {spec.name} (image {outside[0]})"
        )
    return np.asarray(labels, dtype=np.int64)


def _read_batch(path: Path, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 images n x 3 x 32 x 32, int64 labels n), checked."""
    batch = _batch_dict(path, _unpickle(path), spec)
    images = _images(path, batch[b"data"])
    return images, _labels(path, batch[spec.label_key], len(images), spec)
