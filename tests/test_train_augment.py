"""Device-side batches: the vectorized crop/flip/normalize equal a plain per-image reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_fixtures import single_thread  # noqa: F401

from derive.train.augment import (
    AugmentOptions,
    BatchMaker,
    Normalizer,
    epoch_plan,
    gather_crop_flip,
)


def _reference(
    image: np.ndarray, dy: int, dx: int, flip: bool, pad: int, fill: np.ndarray
) -> np.ndarray:
    """One C x H x W image: pad with `fill` per channel, crop at (dy, dx), mirror if asked."""
    c, h, w = image.shape
    padded = np.empty((c, h + 2 * pad, w + 2 * pad), dtype=image.dtype)
    padded[:] = fill[:, None, None]
    padded[:, pad : pad + h, pad : pad + w] = image
    crop = padded[:, dy : dy + h, dx : dx + w]
    return crop[:, :, ::-1] if flip else crop


@pytest.mark.parametrize("pad", [0, 1, 4, 7])
def test_gather_crop_flip_equals_per_image_reference(pad):
    rng = np.random.default_rng(pad)
    images = rng.integers(0, 256, size=(50, 3, 32, 32), dtype=np.uint8)
    sample = rng.permutation(50)[:40]
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, 40))
    flip = rng.integers(0, 2, size=40).astype(bool)
    got, inside = gather_crop_flip(
        torch.from_numpy(images), *(torch.from_numpy(a) for a in (sample, dy, dx, flip)), pad
    )
    assert (
        got.dtype == torch.uint8
        and got.shape == (40, 3, 32, 32)
        and inside.shape == (40, 1, 32, 32)
    )
    marker = np.array([-1, -2, -3])  # a fill no pixel has, to locate the padding in the reference
    for i in range(40):
        want = _reference(images[sample[i]].astype(np.int64), dy[i], dx[i], flip[i], pad, marker)
        padding = want[0] < 0
        np.testing.assert_array_equal(~inside[i, 0].numpy(), padding)
        np.testing.assert_array_equal(got[i].numpy()[:, ~padding], want[:, ~padding])


def test_normalizer_matches_formula():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, 3, 32, 32), dtype=np.uint8)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    norm = Normalizer(mean, std, torch.device("cpu"))
    got = norm(torch.from_numpy(images)).numpy()
    want = (images / 255.0 - np.array(mean)[None, :, None, None]) / np.array(std)[
        None, :, None, None
    ]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        norm.black().view(-1).numpy(), -np.array(mean) / np.array(std), rtol=1e-6
    )


def test_epoch_plan_depends_only_on_seed_and_epoch():
    a = epoch_plan(500, seed=3, epoch=7, pad=4, flip=True, device=torch.device("cpu"))
    torch.manual_seed(123)  # the global RNG must not matter
    b = epoch_plan(500, seed=3, epoch=7, pad=4, flip=True, device=torch.device("cpu"))
    c = epoch_plan(500, seed=3, epoch=8, pad=4, flip=True, device=torch.device("cpu"))
    for field in ("order", "dy", "dx", "flip"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.order, c.order)
    assert sorted(a.order.tolist()) == list(range(500))
    assert int(a.dy.min()) == 0 and int(a.dy.max()) == 8 and 0.4 < a.flip.float().mean() < 0.6


@pytest.mark.parametrize("pad_fill", ["mean", "black"])
def test_train_batches_are_the_reference_pipeline(pad_fill):
    """Each image of an epoch appears once, exactly as pad+crop+flip of the normalized image."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(70, 3, 32, 32), dtype=np.uint8)
    labels = np.arange(70) % 10
    mean, std = [0.3, 0.4, 0.5], [0.2, 0.2, 0.25]
    options = AugmentOptions(enabled=True, pad=4, flip=True, pad_fill=pad_fill)
    maker = BatchMaker(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        Normalizer(mean, std, torch.device("cpu")),
        options,
    )
    batches = list(maker.train_batches(batch_size=16, seed=5, epoch=2))
    assert [len(y) for _, y in batches] == [16, 16, 16, 16, 6]
    x = torch.cat([b for b, _ in batches]).numpy()
    y = torch.cat([b for _, b in batches]).numpy()
    plan = epoch_plan(70, seed=5, epoch=2, pad=4, flip=True, device=torch.device("cpu"))
    assert sorted(plan.order.tolist()) == list(range(70))
    normalized = (images / 255.0 - np.array(mean)[None, :, None, None]) / np.array(std)[
        None, :, None, None
    ]
    fill = np.zeros(3) if pad_fill == "mean" else -np.array(mean) / np.array(std)
    for pos, idx in enumerate(plan.order.tolist()):
        assert y[pos] == labels[idx]
        want = _reference(
            normalized[idx], int(plan.dy[pos]), int(plan.dx[pos]), bool(plan.flip[pos]), 4, fill
        )
        np.testing.assert_allclose(x[pos], want, rtol=1e-5, atol=1e-5)


def test_no_augment_and_eval_batches_are_only_normalized():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(30, 3, 32, 32), dtype=np.uint8)
    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    maker = BatchMaker(
        torch.from_numpy(images), torch.arange(30), norm, AugmentOptions(enabled=False)
    )
    expected = (images / 255.0 - 0.5) / 0.25
    x, y = zip(*maker.eval_batches(batch_size=7), strict=True)
    np.testing.assert_allclose(torch.cat(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert torch.cat(y).tolist() == list(range(30))
    shuffled = torch.cat([b for b, _ in maker.train_batches(batch_size=8, seed=0, epoch=1)]).numpy()
    order = epoch_plan(30, 0, 1, 4, False, torch.device("cpu")).order.numpy()
    np.testing.assert_allclose(shuffled, expected[order], rtol=1e-5, atol=1e-5)


def test_channels_last_batches_hold_the_same_values():
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"))
    plain = BatchMaker(images, torch.arange(10), norm, AugmentOptions())
    cl = BatchMaker(images, torch.arange(10), norm, AugmentOptions(), torch.channels_last)
    (a, _), (b, _) = next(plain.train_batches(10, 0, 1)), next(cl.train_batches(10, 0, 1))
    assert b.is_contiguous(memory_format=torch.channels_last) and torch.equal(a, b)
