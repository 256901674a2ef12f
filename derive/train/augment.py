"""Batches made on the device: uint8 images stay there once, each batch is normalized, cropped and
flipped there in a few vectorized tensor operations (no per-image Python, no worker processes).

Every random choice of an epoch (the order, each image's crop offset and flip) is drawn up front from
a generator seeded by (seed, epoch), so a resumed epoch replays exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from derive.train.options import AugmentOptions
from derive.train.regularize import apply_cutout, cutout_centres


def derive_seed(*parts: object) -> int:
    """A well-mixed 63-bit seed from any parts, e.g. derive_seed(seed, epoch, "data")."""
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


@dataclass(frozen=True)
class EpochPlan:
    """The random choices of one training epoch, indexed by position in the epoch."""

    order: torch.Tensor  # permutation of the training images
    dy: torch.Tensor  # crop offset in the padded image, 0..2*pad
    dx: torch.Tensor
    flip: torch.Tensor  # bool


def epoch_plan(
    n: int, seed: int, epoch: int, pad: int, flip: bool, device: torch.device, group: int = 1
) -> EpochPlan:
    """Draw one epoch's order, crops and flips on the CPU (device-independent), then move them.

    `group` consecutive positions share one crop offset and flip (1: each image its own; the batch
    size: one per batch, `--augment-per batch`); group 1 draws exactly what it always did.
    """
    gen = torch.Generator().manual_seed(derive_seed(seed, epoch, "data"))
    order = torch.randperm(n, generator=gen)
    draws = -(-n // group)
    dy = torch.randint(0, 2 * pad + 1, (draws,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (draws,), generator=gen)
    flips = (
        torch.randint(0, 2, (draws,), generator=gen).bool()
        if flip
        else torch.zeros(draws, dtype=torch.bool)
    )
    if group > 1:
        dy, dx, flips = (t.repeat_interleave(group)[:n] for t in (dy, dx, flips))
    return EpochPlan(*(t.to(device, non_blocking=True) for t in (order, dy, dx, flips)))


@dataclass(frozen=True)
class CropWindows:
    """Where each output pixel of a crop comes from, per image (computed for a whole epoch at once)."""

    rows: torch.Tensor  # N x H: source row * W, clamped into the image
    cols: torch.Tensor  # N x W: source column, clamped, mirrored where flipped
    row_in: torch.Tensor  # N x H bool: the source row lies in the image (not the padding)
    col_in: torch.Tensor  # N x W bool

    def __getitem__(self, sl: slice) -> CropWindows:
        return CropWindows(self.rows[sl], self.cols[sl], self.row_in[sl], self.col_in[sl])


def crop_windows(
    dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int, h: int, w: int
) -> CropWindows:
    """The windows of pad-by-`pad`, crop at (dy, dx), mirror-if-flip, for H x W images."""
    rows = dy[:, None] - pad + torch.arange(h, device=dy.device)
    cols = dx[:, None] - pad + torch.arange(w, device=dx.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return CropWindows(
        rows=rows.clamp(0, h - 1) * w,
        cols=cols.clamp(0, w - 1),
        row_in=(rows >= 0) & (rows < h),
        col_in=(cols >= 0) & (cols < w),
    )


def gather_crops(
    images: torch.Tensor, sample: torch.Tensor, win: CropWindows
) -> tuple[torch.Tensor, torch.Tensor]:
    """images[sample[b]] cropped and flipped as `win` says, in one gather (`take`) over the whole tensor.

    Returns the batch (B x C x H x W, the images' dtype) and a B x 1 x H x W mask that is False on
    padding pixels, whose gathered values are meaningless: the caller fills them after normalization
    (so the fill can be any per-channel value, such as 0 = the mean). With uint8 images the gather moves
    a quarter of the bytes of a float pipeline.
    """
    n, c, h, w = images.shape
    row_base = (sample * (c * h * w))[:, None] + win.rows  # B x H
    chan = torch.arange(c, device=images.device) * (h * w)
    offset = (row_base[:, None, :] + chan[None, :, None])[..., None] + win.cols[:, None, None, :]
    inside = win.row_in[:, None, :, None] & win.col_in[:, None, None, :]
    return images.reshape(-1).take(offset), inside


def gather_crop_flip(
    images: torch.Tensor,
    sample: torch.Tensor,
    dy: torch.Tensor,
    dx: torch.Tensor,
    flip: torch.Tensor,
    pad: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select, pad-crop and flip a batch: image b is images[sample[b]] padded by `pad`, the window at
    (dy[b], dx[b]), mirrored if flip[b]; plus the padding mask (see gather_crops)."""
    return gather_crops(images, sample, crop_windows(dy, dx, flip, pad, *images.shape[2:]))


class Normalizer:
    """uint8 N x C x H x W -> float (x/255 - mean) / std, per channel, on the images' device."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * self.std)
        self.shift = -self.mean / self.std

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.float() * self.scale + self.shift

    def black(self) -> torch.Tensor:
        """A black pixel (value 0) after normalization, per channel (1 x C x 1 x 1)."""
        return self.shift


class BatchMaker:
    """Turns device-resident uint8 images into ready float batches for training and evaluation."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        normalizer: Normalizer,
        options: AugmentOptions,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.images, self.labels = images, labels
        self.normalize = normalizer
        self.options = options
        self.memory_format = memory_format

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def train_batches(
        self, batch_size: int, seed: int, epoch: int, rows: Sequence[slice] | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled, augmented batches of one epoch; every image exactly once (last batch may be short).

        `rows` (positions in the epoch's order, one slice per batch) picks this rank's part of each
        global step in a distributed run (`derive.train.sharding`); by default, whole steps.
        """
        opt = self.options
        plan = epoch_plan(
            len(self),
            seed,
            epoch,
            opt.pad,
            opt.flip and opt.enabled,
            self.images.device,
            group=batch_size if opt.per == "batch" else 1,
        )
        if opt.enabled:
            windows = crop_windows(plan.dy, plan.dx, plan.flip, opt.pad, *self.images.shape[2:])
            fill = (
                self.normalize.black()
                if opt.pad_fill == "black"
                else torch.zeros((), device=self.images.device)
            )
        if opt.cutout:  # centres from their own (seed, epoch) stream, by position in the epoch
            cut_rows, cut_cols = cutout_centres(
                len(self),
                *self.images.shape[2:],
                derive_seed(seed, epoch, "cutout"),
                plan.order.device,
            )
        if rows is None:
            rows = [slice(start, start + batch_size) for start in range(0, len(self), batch_size)]
        for sl in rows:
            idx = plan.order[sl]
            if opt.enabled:
                raw, inside = gather_crops(self.images, idx, windows[sl])
                x = torch.where(inside, self.normalize(raw), fill)
            else:
                x = self.normalize(self.images[idx])
            if opt.cutout:
                x = apply_cutout(x, cut_rows[sl], cut_cols[sl], opt.cutout)
            yield x.contiguous(memory_format=self.memory_format), self.labels[idx]

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalized batches in stored order, no augmentation."""
        for start in range(0, len(self), batch_size):
            x = self.normalize(self.images[start : start + batch_size])
            yield (
                x.contiguous(memory_format=self.memory_format),
                self.labels[start : start + batch_size],
            )
