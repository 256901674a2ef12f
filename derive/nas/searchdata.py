"""The search's data: the CIFAR training set split into a weight half and an architecture half.

SCIS §9.3 / DARTS: 25,000 training images train the weights w, the other 25,000 (the "validation"
half) train the architecture; the test set is never used. Both halves are augmented (pad + random
crop + flip, as DARTS's `train_transform` serves both), on the device by `BatchMaker`.

For small CPU budgets: `limit_images` keeps the first N training images (in file order) before the
split, and `image_size` < 32 average-pools the images once (area resampling, rounded back to uint8)
with the crop padding scaled alike (4·size/32). The split is a permutation fixed by the number of
images (not by the search seed), so seeds differ in initialisation and batch order, not in data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from derive.errors import UserError
from derive.train.augment import AugmentOptions, BatchMaker, Normalizer, derive_seed
from derive.train.data import CifarData, channel_stats, load_cifar

IMAGE_SIZES = (8, 12, 16, 20, 24, 28, 32)  # multiples of 4: the two reductions halve it twice


@dataclass
class SearchData:
    """The two halves on the device, and what they were made from."""

    data: CifarData
    train: BatchMaker
    val: BatchMaker
    image_size: int
    mean: list[float]
    std: list[float]


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """N×3×32×32 uint8 → N×3×size×size uint8 by area averaging (identity at 32)."""
    if size == images.shape[-1]:
        return images
    x = torch.from_numpy(images).float()
    out = F.interpolate(x, size=(size, size), mode="area")
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


def split_indices(n: int, train_portion: float) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random permutation of n images cut at floor(portion·n): (weight half, arch half)."""
    cut = int(n * train_portion)
    if cut < 1 or n - cut < 1:
        raise UserError(
            f"--train-portion {train_portion} of {n} images leaves a half empty; use more images"
        )
    gen = torch.Generator().manual_seed(derive_seed("nas-split", n))
    order = torch.randperm(n, generator=gen).numpy()
    return np.sort(order[:cut]), np.sort(order[cut:])


def load_search_data(
    dataset: str,
    data_dir: str,
    image_size: int,
    train_portion: float,
    limit_images: int | None,
    augment: bool,
    device: torch.device,
) -> SearchData:
    """Read, subset, resize and split the training images; UserError on bad data or sizes."""
    if image_size not in IMAGE_SIZES:
        raise UserError(
            f"--image-size must be one of {', '.join(map(str, IMAGE_SIZES))} (a multiple of 4 up to "
            f"CIFAR's 32: both reductions need an even size), got {image_size}"
        )
    data = load_cifar(dataset, data_dir)
    images, labels = data.train_images, data.train_labels
    if limit_images is not None:
        if limit_images > len(images):
            raise UserError(
                f"--limit-images {limit_images}: the training set has only {len(images)} images"
            )
        images, labels = images[:limit_images], labels[:limit_images]
    images = resize(images, image_size)
    weight_idx, arch_idx = split_indices(len(images), train_portion)
    mean, std = channel_stats(images)
    normalizer = Normalizer(mean, std, device)
    options = AugmentOptions(enabled=augment, pad=max(1, round(4 * image_size / 32)), flip=True)

    def on_device(idx: np.ndarray) -> BatchMaker:
        return BatchMaker(
            torch.from_numpy(np.ascontiguousarray(images[idx])).to(device),
            torch.from_numpy(np.ascontiguousarray(labels[idx])).to(device),
            normalizer,
            options,
        )

    return SearchData(data, on_device(weight_idx), on_device(arch_idx), image_size, mean, std)


class CyclingBatches:
    """A persistent iterator over the architecture half: pass c is an augmented epoch seeded by
    (seed, "arch", c); it continues across epochs (unlike DARTS's `next(iter(valid_queue))`, which
    draws a fresh random batch with replacement each step). `state()` / the constructor restore it."""

    def __init__(
        self, batches: BatchMaker, batch_size: int, seed: int, cycle: int = 0, position: int = 0
    ) -> None:
        self.batches, self.batch_size, self.seed = batches, batch_size, seed
        self.cycle, self.position = cycle, position
        self._iter = self._start()
        for _ in range(position):
            next(self._iter)

    def _start(self):  # type: ignore[no-untyped-def]
        return self.batches.train_batches(self.batch_size, self.seed, f"arch-{self.cycle}")

    def __iter__(self) -> CyclingBatches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = next(self._iter, None)
        if batch is None or batch[1].shape[0] < 2:  # a pass ends (a last batch of 1 is skipped)
            self.cycle, self.position = self.cycle + 1, 0
            self._iter = self._start()
            batch = next(self._iter)
        self.position += 1
        return batch

    def state(self) -> dict[str, int]:
        return {"cycle": self.cycle, "position": self.position}


__all__ = [
    "IMAGE_SIZES",
    "CyclingBatches",
    "SearchData",
    "load_search_data",
    "resize",
    "split_indices",
]
