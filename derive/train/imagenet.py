"""ImageNet for `derive train --dataset imagenet`: an ImageFolder tree, the papers' augmentation.

    DIR/train/<wnid>/*.JPEG    DIR/val/<wnid>/*.JPEG    (classes: the train/ folder names, sorted)

The recipe (SCIS'23 appendix D, after DenseNet, whose code is fb.resnet.torch):
- training: a random scale-and-aspect crop (area 8-100 %, aspect 3/4-4/3; torchvision's
  RandomResizedCrop rule) resized to S x S (S = --image-size, 224), a horizontal flip, then
  fb.resnet.torch's colour jitter (brightness, contrast, saturation, each scaled by 1 + U(-0.4, 0.4),
  in random order) and AlexNet-style PCA lighting (std 0.1), then per-channel normalization;
- validation: resize the shorter side to S / 0.875 (256), centre crop S x S, normalize.

Where the work happens: DataLoader worker processes read each file and decode it with
torchvision.io.decode_image (libjpeg-turbo; PNG/CMYK files mislabelled .JPEG are handled too), crop
and resize it as uint8; the batch is pinned, copied to the device, and jitter, lighting and
normalization run there on the whole batch (channels_last on CUDA). `--decode device` moves the
decode itself to the device (torchvision.io.decode_jpeg on CUDA = nvJPEG): the workers then only
read the bytes and the header.

Determinism: the epoch order is `sharding.epoch_order(N, seed, epoch)` as for CIFAR, and every random
choice for an image comes from a generator seeded by (seed, epoch, image index). Batches, crops and
colours therefore do not depend on the number of workers or ranks, and resume replays them.

Bad data: the layout (train/ and val/, no class folders, an empty class folder, a val class unknown
to train/, a class folder that is a link to the data folder or to another class) and every file's
signature (not JPEG/PNG/GIF/WebP, or empty) are checked before anything is written: one line, exit 2.
So is a split none of whose sampled images (up to PROBE, spread over it) decodes: the bodies are
damaged. The scan keeps regular files only (derive.train.imagescan): symlink loops, links into other
class folders, dangling links, FIFOs and devices are skipped, and one warning says how many. A file
that passes those checks but fails to decode during an epoch is logged as a warning and replaced by
the next image of the training set (skipped in validation); it never stops the run with a traceback
(what libjpeg prints about it is silenced), and summary.json lists it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from derive.errors import UserError
from derive.train.augment import derive_seed
from derive.train.config import TrainConfig
from derive.train.distributed import Dist
from derive.train.imagescan import (
    Skipped,
    Walk,
    ancestor_keys,
    folder_key,
    folder_keys,
    read_all,
    read_head,
)
from derive.train.sharding import epoch_order, eval_range
from derive.train.traindata import TrainData

log = logging.getLogger(__name__)

EXTRA = "imagenet"  # pip install 'derive[imagenet]'
MEAN = [0.485, 0.456, 0.406]  # fb.resnet.torch / torchvision ImageNet statistics
STD = [0.229, 0.224, 0.225]
# AlexNet's PCA of ImageNet pixel colours (fb.resnet.torch datasets/imagenet.lua)
EIGVAL = [0.2175, 0.0188, 0.0045]
EIGVEC = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
]
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
VAL_CROP_FRACTION = 0.875  # 224 / 256
SUBSTITUTE_TRIES = 8  # a training image that fails to decode is replaced by one of the next 8
PROBE = 8  # images of each split decoded before the run starts: if none does, the data is damaged
DECODE_ERRORS = (RuntimeError, OSError, ValueError)  # what reading or decoding a bad file raises
MAX_LISTED = 100  # unreadable files listed in summary.json
# The first bytes of the formats torchvision.io.decode_image reads.
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
N_PARAMS = 10  # per image: flip, 3 jitter factors, 3 jitter order keys, 3 lighting alphas


def require_torchvision() -> None:
    """UserError naming the extra when torchvision is missing (it is optional for CIFAR)."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        raise UserError(
            f"--dataset imagenet needs torchvision: pip install 'derive[{EXTRA}]'"
        ) from None
    # torchvision 0.29 announces that torchvision.io's decoders will move to TorchCodec; they are
    # still its fastest JPEG path (libjpeg-turbo on the CPU, nvJPEG on CUDA), so say it once, not per image.
    warnings.filterwarnings(
        "ignore",
        message="The image decoding and encoding capabilities of TorchVision are deprecated",
    )


# --- scanning ----------------------------------------------------------------------------------
def scan_classes(data_dir: str | os.PathLike[str]) -> list[str]:
    """The class names (sorted train/ folder names); UserError for a missing or empty layout."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"ImageNet data directory {str(root)!r} does not exist")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise UserError(
                f"{str(root)!r} has no {split}/ folder: expected DIR/train/<class>/*.JPEG and "
                "DIR/val/<class>/*.JPEG"
            )
    classes = sorted(e.name for e in os.scandir(root / "train") if e.is_dir())
    if not classes:
        raise UserError(f"{str(root / 'train')!r} holds no class folders")
    return classes


@dataclass
class ImageIndex:
    """The files of one split, with labels, sizes in bytes and paths relative to the data dir."""

    paths: list[str]
    labels: list[int]
    sizes: list[int] = field(default_factory=list)
    skipped: Skipped = field(default_factory=Skipped)  # entries that are not regular image files

    def __len__(self) -> int:
        return len(self.paths)


def scan_split(root: Path, split: str, classes: list[str], check: bool = True) -> ImageIndex:
    """Every image file of root/split/<class>/ (torchvision's extensions), checked: no empty class
    folder, no class outside `classes`, no class folder that is a link to the data or to another
    class, and (`check`) every file starts with an image signature. Entries that are not regular
    files (FIFOs, dangling links, symlink loops...) are skipped and counted in `skipped`."""
    require_torchvision()
    from torchvision.datasets.folder import IMG_EXTENSIONS

    folder = root / split
    present = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise UserError(
            f"{str(folder)!r} has class folders that train/ lacks: {', '.join(unknown[:5])}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        )
    index = {c: i for i, c in enumerate(classes) if c in present}
    _check_class_folders(root, folder, list(index))
    walk = Walk(root, IMG_EXTENSIONS, _data_folders(root))
    paths: list[str] = []
    labels: list[int] = []
    empty: list[str] = []
    for name, label in index.items():
        found = walk.images(folder / name)
        if not found:
            empty.append(name)
        paths += [os.path.relpath(p, root) for p in found]
        labels += [label] * len(found)
    if empty:
        raise UserError(
            f"empty class folder in {str(folder)!r}: {', '.join(empty[:5])} "
            f"(no {'/'.join(IMG_EXTENSIONS[:3])}... files)"
        )
    missing = len(classes) - len(index)
    if split == "val" and missing:
        log.warning("%s has no folder for %d of the %d classes", folder, missing, len(classes))
    sizes = check_signatures(root, paths) if check else [0] * len(paths)
    return ImageIndex(paths, labels, sizes, walk.skipped)


def _data_folders(root: Path) -> frozenset[tuple[int, int]]:
    """The identities of the data folder, its two splits and every class folder in them."""
    splits = [root / "train", root / "val"]
    classes = [Path(e.path) for s in splits for e in os.scandir(s) if e.is_dir()]
    return folder_keys([root, *splits, *classes])


def _check_class_folders(root: Path, folder: Path, names: Sequence[str]) -> None:
    """UserError if a class folder is (a link to) the data folder, a split, a folder above them,
    or the same folder as another class: its images would be counted under the wrong label."""
    holders = folder_keys([root, root / "train", root / "val"]) | ancestor_keys(root)
    seen: dict[tuple[int, int], str] = {}
    for name in names:
        key = folder_key(folder / name)
        shown = str(folder / name)
        if key in holders:
            raise UserError(
                f"class folder {shown!r} is a link to a folder that holds the data itself "
                "(a symlink loop); remove it"
            )
        if key in seen:
            raise UserError(
                f"class folders {str(folder / seen[key])!r} and {shown!r} are the same folder "
                "(a link): each class needs a folder of its own"
            )
        seen[key] = name


def check_signatures(root: Path, paths: Sequence[str], threads: int = 16) -> list[int]:
    """Sizes of the files; UserError if any is empty or does not start like a JPEG/PNG/GIF/WebP.

    Reads 12 bytes of each file (in threads: this is I/O); decoding is left to the epoch.
    """

    def head(rel: str) -> tuple[int, bytes]:
        try:
            return read_head(root / rel, 12)  # a regular file: never blocks on a FIFO
        except OSError as exc:  # gone or replaced since the scan
            raise UserError(f"{str(root / rel)!r} cannot be read: {exc.strerror or exc}") from None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        heads = list(pool.map(head, paths, chunksize=256))
    bad = [rel for rel, (_, first) in zip(paths, heads, strict=True) if not _is_image(first)]
    if bad:
        more = f" ({len(bad) - 1} more files like it)" if len(bad) > 1 else ""
        raise UserError(
            f"{str(root / bad[0])!r} is not an image (corrupt, empty, or another format: expected "
            f"JPEG, PNG, GIF or WebP){more}; remove or replace it"
        )
    return [size for size, _ in heads]


def _is_image(first: bytes) -> bool:
    return first.startswith(SIGNATURES) or (first[:4] == b"RIFF" and first[8:12] == b"WEBP")


def fingerprint(train: ImageIndex, val: ImageIndex, classes: list[str]) -> str:
    """A short hash of the class list and every file's path, label and size."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update("\n".join(classes).encode())
    for split in (train, val):
        for path, label, size in zip(split.paths, split.labels, split.sizes, strict=True):
            digest.update(f"\n{path}\t{label}\t{size}".encode())
    return digest.hexdigest()


# --- per-image random choices ------------------------------------------------------------------
def resized_crop_params(height: int, width: int, rng: random.Random) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random scale-and-aspect crop: torchvision's RandomResizedCrop.get_params
    rule (10 tries at area U(8 %, 100 %), log-uniform aspect in [3/4, 4/3]; else the central crop with
    the aspect clamped), with the draws taken from `rng` (Python's: microseconds per image)."""
    area = height * width
    log_lo, log_hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(10):
        target_area = area * rng.uniform(*CROP_SCALE)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(CROP_RATIO):
        w, h = width, int(round(width / min(CROP_RATIO)))
    elif in_ratio > max(CROP_RATIO):
        h, w = height, int(round(height * max(CROP_RATIO)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@dataclass(frozen=True)
class Augment:
    """The training augmentation's settings (validation uses only image_size)."""

    image_size: int = 224
    enabled: bool = True  # False: training images get the validation transform
    flip: bool = True
    color_jitter: float = 0.4
    lighting: float = 0.1


def draw(
    index: int, seed: int, epoch: int, height: int, width: int, aug: Augment
) -> tuple[tuple[int, int, int, int], torch.Tensor]:
    """The crop box and the N_PARAMS colour/flip parameters of training image `index` in `epoch`."""
    rng = random.Random(derive_seed(seed, epoch, "augment", index))
    box = resized_crop_params(height, width, rng)
    flip = float(aug.flip and rng.random() < 0.5)
    factors = [1.0 + (2 * rng.random() - 1) * aug.color_jitter for _ in range(3)]
    order_keys = [rng.random() for _ in range(3)]  # argsort: the random order of the three
    alphas = [rng.gauss(0.0, 1.0) * aug.lighting for _ in range(3)]
    return box, torch.tensor([flip, *factors, *order_keys, *alphas])


# --- decoding and geometric transforms (uint8, CHW, any device) ---------------------------------
def decode(data: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 3 x H x W RGB from a file's bytes: torchvision.io.decode_jpeg on `device` for JPEGs
    (nvJPEG on CUDA), decode_image on the CPU for everything else (PNG, CMYK/odd JPEGs)."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    if torch.device(device).type != "cpu" and data[:3].tolist() == [0xFF, 0xD8, 0xFF]:
        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            pass  # e.g. a CMYK JPEG nvJPEG does not take: the CPU decoder below does
    with quiet_stderr():
        image = decode_image(data, mode=ImageReadMode.RGB)
    return image.to(device)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Inside the block, what C code prints on file descriptor 2 is dropped: libjpeg's "Corrupt JPEG
    data: ..." lines, one per damaged file (a failure still arrives as an exception)."""
    with contextlib.suppress(ValueError, OSError):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to silence
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def train_view(
    image: torch.Tensor, box: tuple[int, int, int, int], flip: bool, size: int
) -> torch.Tensor:
    """Crop `box`, resize to size x size (bilinear, antialiased), mirror if `flip`."""
    from torchvision.transforms.v2 import functional as TF

    top, left, h, w = box
    out = TF.resized_crop(image, top, left, h, w, [size, size], antialias=True)
    return TF.horizontal_flip(out) if flip else out


def val_view(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to round(size / 0.875), take the central size x size."""
    from torchvision.transforms.v2 import functional as TF

    resized = TF.resize(image, [round(size / VAL_CROP_FRACTION)], antialias=True)
    return TF.center_crop(resized, [size, size])


# --- batch-level colour augmentation and normalization (float, on the device) ------------------
def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


def color_jitter(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """fb.resnet.torch ColorJitter on a float batch in [0, 1]: brightness (blend with black), contrast
    (with the mean grey), saturation (with the grey image), each by its factor, in random order.

    Three passes: at each position every image applies its own op, x * a + other * (1 - a).
    """
    order = params[:, 4:7].argsort(dim=1)
    view = (-1, 1, 1, 1)
    for position in range(3):
        op = order[:, position]
        alpha = params[:, 1:4].gather(1, op[:, None]).view(view).to(x.dtype)
        gray = _gray(x)
        mean = gray.mean(dim=(1, 2, 3), keepdim=True)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        other = torch.where(op.view(view) == 2, gray, torch.where(op.view(view) == 1, mean, zero))
        x = torch.lerp(other, x, alpha)  # other + alpha * (x - other)
    return x


def lighting(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """AlexNet PCA lighting: add eigvec @ (alpha * eigval) to each image's channels."""
    eigval = torch.tensor(EIGVAL, device=x.device, dtype=x.dtype)
    eigvec = torch.tensor(EIGVEC, device=x.device, dtype=x.dtype)
    rgb = (params[:, 7:10] * eigval) @ eigvec.T  # row b: sum_j eigvec[i, j] * alpha_bj * eigval_j
    return x + rgb[:, :, None, None]


class Finisher:
    """uint8 batch on the device -> normalized float batch (+ jitter and lighting for training)."""

    def __init__(self, device: torch.device, memory_format: torch.memory_format) -> None:
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
        self.memory_format = memory_format

    def __call__(
        self, images: torch.Tensor, params: torch.Tensor | None, aug: Augment | None
    ) -> torch.Tensor:
        x = images.float() / 255.0
        if aug is not None and params is not None:
            if aug.color_jitter > 0:
                x = color_jitter(x, params)
            if aug.lighting > 0:
                x = lighting(x, params)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)


# --- the Dataset, sampler and loader -----------------------------------------------------------
class ImageFiles(torch.utils.data.Dataset):
    """Items are (index, epoch) keys: epoch >= 1 gives the training view of that epoch, 0 the
    validation view. `decode_here=False` returns the file's bytes instead (decoded on the device)."""

    def __init__(
        self, root: Path, index: ImageIndex, aug: Augment, seed: int, decode_here: bool
    ) -> None:
        self.root, self.aug, self.seed = root, aug, seed
        # numpy arrays, not lists of Python objects: forked workers read them without touching
        # reference counts, so the pages stay shared (1.28 M paths would otherwise be copied per worker)
        self.paths = np.array([p.encode() for p in index.paths], dtype=np.bytes_)
        self.labels = np.asarray(index.labels, dtype=np.int64)
        self.decode_here = decode_here

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, object]:
        index, epoch = key
        bad: list[str] = []
        tries = SUBSTITUTE_TRIES if epoch else 1
        for attempt in range(tries):
            i = (index + attempt) % len(self)
            try:
                item = self._load(i, index, epoch)
            except DECODE_ERRORS as exc:
                bad.append(f"{self.paths[i].decode()} ({_reason(exc)})")
                continue
            item["bad"] = bad
            return item
        return {"bad": bad, "failed": True}

    def _load(self, i: int, key_index: int, epoch: int) -> dict[str, object]:
        """Image i, with the random choices of key_index (so a substitute keeps the plan's draws)."""
        raw = read_all(self.root / self.paths[i].decode())  # never opens a FIFO
        label = int(self.labels[i])
        if self.decode_here:
            image = decode(_as_tensor(raw))
            height, width = image.shape[-2:]
        else:
            height, width = _header_size(raw)
        if epoch and self.aug.enabled:
            box, params = draw(key_index, self.seed, epoch, height, width, self.aug)
        else:
            box, params = None, None
        item: dict[str, object] = {"label": label, "box": box, "params": params}
        if self.decode_here:
            item["image"] = self.view(image, box, params)
        else:
            item["data"] = raw  # bytes: cheap to pass between processes, decoded on the device
        return item

    def view(
        self,
        image: torch.Tensor,
        box: tuple[int, int, int, int] | None,
        params: torch.Tensor | None,
    ) -> torch.Tensor:
        if box is None or params is None:
            return val_view(image, self.aug.image_size)
        return train_view(image, box, bool(params[0].item()), self.aug.image_size)


def _as_tensor(raw: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8)


def _header_size(raw: bytes) -> tuple[int, int]:
    """(height, width) from the file's header only, with Pillow (no decode)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as img:
            width, height = img.size
    except (
        SyntaxError,
        Image.DecompressionBombError,
    ) as exc:  # what else Pillow raises on bad data
        raise ValueError(str(exc) or type(exc).__name__) from None
    return height, width


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[-1] if text else type(exc).__name__
    return line.split(", ")[-1][:80]


class StepSampler(torch.utils.data.Sampler[list[tuple[int, int]]]):
    """Batches of (index, epoch) keys: for training, this rank's rows of each global step of the
    epoch's order (set by `plan`); for validation, this rank's contiguous part in stored order."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.batches: list[list[tuple[int, int]]] = []

    def plan(self, seed: int, epoch: int, rows: Sequence[slice]) -> None:
        order = epoch_order(self.n, seed, epoch).tolist()
        self.batches = [[(order[p], epoch) for p in range(*sl.indices(self.n))] for sl in rows]

    def plan_eval(self, part: slice, batch_size: int) -> None:
        keys = [(i, 0) for i in range(*part.indices(self.n))]
        self.batches = [keys[s : s + batch_size] for s in range(0, len(keys), batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def collate(items: list[dict[str, object]]) -> dict[str, object]:
    """Stack the good items; keep the names of unreadable files; flag a sample that found no
    readable substitute."""
    good = [it for it in items if not it.get("failed")]
    out: dict[str, object] = {
        "bad": [name for it in items for name in it["bad"]],  # type: ignore[union-attr]
        "failed": len(good) < len(items),
        "labels": torch.tensor([it["label"] for it in good], dtype=torch.int64),
    }
    if good and "image" in good[0]:
        out["images"] = torch.stack([it["image"] for it in good])  # type: ignore[misc]
    else:
        out["data"] = [it["data"] for it in good]
        out["boxes"] = [it["box"] for it in good]
    if good and good[0]["params"] is not None:
        out["params"] = torch.stack([it["params"] for it in good])  # type: ignore[misc]
    return out


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decode and resize are per image; threads would only contend


class ImageNetSource:
    """One split as batches on the device: `train_batches` (training) or `eval_batches` (validation)."""

    def __init__(
        self,
        root: Path,
        index: ImageIndex,
        aug: Augment,
        seed: int,
        device: torch.device,
        memory_format: torch.memory_format,
        workers: int,
        decode_on_device: bool,
        part: slice | None = None,
        unreadable: list[str] | None = None,
    ) -> None:
        self.dataset = ImageFiles(root, index, aug, seed, decode_here=not decode_on_device)
        self.sampler = StepSampler(len(index))
        self.aug, self.device = aug, device
        self.decode_on_device = decode_on_device
        self.finish = Finisher(device, memory_format)
        self.part = part
        self.unreadable = [] if unreadable is None else unreadable  # shared by train and val
        self.loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            worker_init_fn=_worker_init if workers > 0 else None,
        )

    def __len__(self) -> int:
        if self.part is not None:
            return len(range(*self.part.indices(len(self.dataset))))
        return len(self.dataset)

    def train_batches(
        self, batch_size: int, seed: int, epoch: int, rows: Sequence[slice] | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if rows is None:
            rows = [slice(s, s + batch_size) for s in range(0, len(self.dataset), batch_size)]
        self.sampler.plan(seed, epoch, rows)
        for batch in self.loader:
            yield self._on_device(batch, train=True)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.plan_eval(self.part or slice(None), batch_size)
        for batch in self.loader:
            if len(batch["labels"]):  # type: ignore[arg-type]
                yield self._on_device(batch, train=False)
            else:
                self._note(batch, train=False)

    def _note(self, batch: dict[str, object], train: bool) -> None:
        if batch["failed"] and train:  # the one line that stops the run, without the noise before
            raise UserError(
                f"{SUBSTITUTE_TRIES} images in a row could not be decoded (last: "
                f"{batch['bad'][-1]}): the training data is damaged"  # type: ignore[index]
            )
        for name in batch["bad"]:  # type: ignore[union-attr]
            log.warning(
                "unreadable image %s: %s", name, "replaced by the next one" if train else "skipped"
            )
            if len(self.unreadable) < MAX_LISTED:
                self.unreadable.append(name)

    def _on_device(
        self, batch: dict[str, object], train: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._note(batch, train)
        labels = batch["labels"].to(self.device, non_blocking=True)  # type: ignore[union-attr]
        params = batch.get("params")
        if params is not None:
            params = params.to(self.device, non_blocking=True)  # type: ignore[union-attr]
        if "images" in batch:
            images = batch["images"].to(self.device, non_blocking=True)  # type: ignore[union-attr]
        else:
            images = self._decode_batch(batch, params)
        aug = self.aug if train and self.aug.enabled else None
        return self.finish(images, params, aug), labels

    def _decode_batch(self, batch: dict[str, object], params: torch.Tensor | None) -> torch.Tensor:
        """--decode device: decode each file on the device, then crop it there."""
        views = []
        for k, (data, box) in enumerate(zip(batch["data"], batch["boxes"], strict=True)):  # type: ignore[arg-type]
            image = decode(_as_tensor(data), self.device)
            flip = bool(params[k, 0].item()) if params is not None else False
            views.append(
                val_view(image, self.aug.image_size)
                if box is None
                else train_view(image, box, flip, self.aug.image_size)
            )
        return torch.stack(views)


def probe_decode(root: Path, index: ImageIndex, split: str) -> None:
    """UserError unless one of PROBE images spread over the split decodes: files whose header is
    right but whose body is garbage would otherwise fail only during the first epoch."""
    n = len(index)
    count = min(PROBE, n)
    picks = sorted({round(k * (n - 1) / max(count - 1, 1)) for k in range(count)})
    failures: list[str] = []
    for i in picks:
        try:
            decode(_as_tensor(read_all(root / index.paths[i])))
            return
        except DECODE_ERRORS as exc:
            failures.append(f"{index.paths[i]} ({_reason(exc)})")
    if failures:
        raise UserError(
            f"none of the {len(failures)} {split}/ images tried could be decoded (first: "
            f"{failures[0]}): the data is damaged; replace the files"
        )


def _warn_skipped(*skipped: Skipped) -> None:
    """One warning for all the entries the scan left out, if any."""
    total = Skipped()
    for part in skipped:
        total.counts.update(part.counts)
        total.first = total.first or part.first
    line = total.summary()
    if line:
        log.warning("ImageNet data: %s", line)


def default_workers(local_world_size: int) -> int:
    """DataLoader processes per rank: this node's CPUs shared by its ranks, at most 8."""
    return max(1, min(8, (os.cpu_count() or 1) // max(1, local_world_size)))


def open_imagenet(
    config: TrainConfig, device: torch.device, memory_format: torch.memory_format, d: Dist
) -> TrainData:
    """Scan and check DIR/train and DIR/val, and build the two loaders (this rank's part of val)."""
    require_torchvision()
    root = Path(config.data_dir).expanduser()
    classes = scan_classes(root)
    # Rank 0 alone reads every file's first bytes (and so alone has the fingerprint, which only rank 0
    # uses): its error reaches every rank through Dist.agreement, and 8 ranks of a node do not each
    # read 1.3 M files.
    train_index = scan_split(root, "train", classes, check=d.is_main)
    val_index = scan_split(root, "val", classes, check=d.is_main)
    if len(val_index) == 0:
        raise UserError(f"{str(root / 'val')!r} holds no images")
    if d.is_main:
        probe_decode(root, train_index, "train")
        probe_decode(root, val_index, "val")
        _warn_skipped(train_index.skipped, val_index.skipped)
    aug = Augment(
        image_size=config.image_size,
        enabled=config.augment,
        flip=config.flip,
        color_jitter=config.color_jitter,
        lighting=config.lighting,
    )
    workers = (
        config.workers if config.workers is not None else default_workers(d.launch.local_world_size)
    )
    on_device = config.decode == "device"
    common = {
        "root": root,
        "aug": aug,
        "seed": config.seed,
        "device": device,
        "memory_format": memory_format,
        "workers": workers,
        "decode_on_device": on_device,
        "unreadable": [],
    }
    train = ImageNetSource(index=train_index, **common)  # type: ignore[arg-type]
    part = eval_range(len(val_index), d.rank, d.world_size)
    val = ImageNetSource(index=val_index, part=part, **common)  # type: ignore[arg-type]
    digest = fingerprint(train_index, val_index, classes)
    info: dict[str, object] = {
        "name": "imagenet",
        "folder": str(root),
        "train_size": len(train_index),
        "test_size": len(val_index),
        "test_split": "val",
        "num_classes": len(classes),
        "classes": {"first": classes[0], "last": classes[-1]},
        "fingerprint": digest,
        "image_size": config.image_size,
        "normalization": {
            "mean": MEAN,
            "std": STD,
            "units": "pixel/255, per channel R,G,B (the ImageNet statistics fb.resnet.torch uses)",
        },
        "loader": {"workers": workers, "decode": "device" if on_device else "workers"},
        "unreadable_files": train.unreadable,
        "unreadable_files_note": "files of rank 0's share that failed to decode (at most 100 listed): "
        "a training image is replaced by the next one, a validation image is left out",
    }
    return TrainData(
        name="imagenet",
        num_classes=len(classes),
        input_size=config.image_size,
        train=train,
        test=val,
        fingerprint=digest,
        normalization={"mean": MEAN, "std": STD},
        info=info,
        report_top5=True,
    )
