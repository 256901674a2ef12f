"""Device-side batches: the vectorized crop/flip/normalize equal a plain per-image reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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


# ----------------------------------------------------- the crops' distribution, checked independently


def _chi2_p_value(statistic: float, df: int) -> float:
    """P(χ²_df ≥ statistic): the regularized upper incomplete gamma function (mpmath)."""
    import mpmath

    return float(mpmath.gammainc(df / 2, statistic / 2, mpmath.inf, regularized=True))


def test_crop_offsets_are_uniform_and_independent():
    """Over one 50,000-image epoch, dy and dx each take all 2·pad + 1 values equally often (χ²
    goodness of fit) and are independent of each other and of the flip (χ² on the 9 × 9 × 2 table).

    An off-by-one (dx from 0 … 2·pad − 1) leaves a value empty; dx drawn equal to dy puts every
    count on the diagonal: both give p-values below 1e-100. The seed is fixed, so this is exact."""
    pad, n = 4, 50_000
    plan = epoch_plan(n, seed=11, epoch=3, pad=pad, flip=True, device=torch.device("cpu"))
    k = 2 * pad + 1
    for offsets in (plan.dy, plan.dx):
        counts = torch.bincount(offsets, minlength=k).double()
        assert len(counts) == k and counts.min() > 0  # every offset occurs, none beyond 2·pad
        stat = float(((counts - n / k) ** 2 / (n / k)).sum())
        assert _chi2_p_value(stat, k - 1) > 1e-4
    table = torch.zeros(k, k, 2, dtype=torch.float64)
    table.index_put_((plan.dy, plan.dx, plan.flip.long()), torch.ones(n, dtype=torch.float64), True)
    expected = (
        table.sum((1, 2))[:, None, None]
        * table.sum((0, 2))[None, :, None]
        * table.sum((0, 1))[None, None, :]
        / n**2
    )
    stat = float(((table - expected) ** 2 / expected).sum())
    df = k * k * 2 - 1 - 2 * (k - 1) - 1
    assert _chi2_p_value(stat, df) > 1e-4
    assert 0.1 < float((plan.dx == plan.dy).double().mean()) < 0.125  # 1/9 if independent


def test_the_two_checks_above_catch_both_bugs():
    """The statistics reject an off-by-one range and dx = dy (so the test above can fail)."""
    n, k = 50_000, 9
    gen = torch.Generator().manual_seed(0)
    short = torch.randint(0, k - 1, (n,), generator=gen)
    assert torch.bincount(short, minlength=k).min() == 0
    dy = torch.randint(0, k, (n,), generator=gen)
    table = torch.zeros(k, k, dtype=torch.float64)
    table.index_put_((dy, dy), torch.ones(n, dtype=torch.float64), True)
    expected = table.sum(1)[:, None] * table.sum(0)[None, :] / n
    assert _chi2_p_value(float(((table - expected) ** 2 / expected).sum()), (k - 1) ** 2) < 1e-100


def _pad_crop_flip(image: torch.Tensor, dy: int, dx: int, flip: bool, pad: int, fill: float):
    """torch.nn.functional.pad, a slice and torch.flip: a second implementation of the crop."""
    h, w = image.shape[-2:]
    padded = F.pad(image, (pad, pad, pad, pad), value=fill)
    crop = padded[..., dy : dy + h, dx : dx + w]
    return crop.flip(-1) if flip else crop


@pytest.mark.parametrize("pad", [1, 4, 6])
def test_low_level_crops_equal_pad_slice_flip(pad):
    """The vectorized gather, fed the same offsets, equals F.pad + slicing + flip image by image."""
    gen = torch.Generator().manual_seed(pad)
    images = torch.randint(0, 256, (64, 3, 32, 32), generator=gen, dtype=torch.uint8)
    sample = torch.randperm(64, generator=gen)[:48]
    dy, dx = torch.randint(0, 2 * pad + 1, (2, 48), generator=gen)
    flip = torch.randint(0, 2, (48,), generator=gen).bool()
    got, inside = gather_crop_flip(images, sample, dy, dx, flip, pad)
    for i in range(48):
        image = images[sample[i]].double()
        want = _pad_crop_flip(image, int(dy[i]), int(dx[i]), bool(flip[i]), pad, -1.0)
        padding = want[0] < 0
        assert torch.equal(~inside[i, 0], padding)
        assert torch.equal(got[i].double()[:, ~padding], want[:, ~padding])


def _padding_fraction(batches: list[torch.Tensor]) -> torch.Tensor:
    """Per output pixel: the fraction of images whose pixel there is padding (0 after normalizing)."""
    return torch.cat([(b[:, 0] == 0).double() for b in batches]).mean(0)


def test_epoch_pipeline_has_the_marginals_of_an_independent_pipeline():
    """train_batches over one epoch of white 16×16 images against (1) an independent pipeline that
    draws its own offsets with numpy and crops with F.pad + slice + flip, and (2) the exact
    padding probability of each output pixel for uniform, independent dy, dx and a fair flip:
    1 − (1 − P_row(r))(1 − P_col(c)). 50,000 images: a standard error below 0.0023 per pixel.
    dx = dy (or an off-by-one) moves the corner pixels by 0.02 or more."""
    n, size, pad = 50_000, 16, 4
    k = 2 * pad + 1
    images = torch.full((n, 1, size, size), 255, dtype=torch.uint8)
    maker = BatchMaker(
        images,
        torch.zeros(n, dtype=torch.long),
        Normalizer([0.5], [0.25], torch.device("cpu")),
        AugmentOptions(enabled=True, pad=pad, flip=True, pad_fill="mean"),
    )
    ours = _padding_fraction([x for x, _ in maker.train_batches(5000, seed=2, epoch=1)])

    rng = np.random.default_rng(12345)
    dys, dxs, flips = rng.integers(0, k, n), rng.integers(0, k, n), rng.integers(0, 2, n)
    white = torch.full((1, size, size), 2.0, dtype=torch.float64)  # (1 − 0.5)/0.25
    counts = torch.zeros(k, k, 2)
    np.add.at(counts.numpy(), (dys, dxs, flips), 1)
    theirs = torch.zeros(size, size, dtype=torch.float64)
    for a in range(k):  # each distinct crop once, weighted by how often it was drawn
        for b in range(k):
            for f in range(2):
                crop = _pad_crop_flip(white, a, b, bool(f), pad, 0.0)[0]
                theirs += counts[a, b, f].item() * (crop == 0).double()
    theirs /= n

    position = torch.arange(size)
    offsets = torch.arange(k)
    outside = (position[:, None] + offsets[None, :] - pad < 0) | (
        position[:, None] + offsets[None, :] - pad >= size
    )
    p_row = outside.double().mean(1)
    p_col = (p_row + p_row.flip(0)) / 2  # the flip mirrors the column
    exact = 1 - (1 - p_row[:, None]) * (1 - p_col[None, :])
    tolerance = 5 * torch.sqrt(exact * (1 - exact) / n).max().item()
    assert (theirs - exact).abs().max() < tolerance  # the reference is right
    assert (ours - exact).abs().max() < tolerance  # and so is the pipeline
    assert (ours - theirs).abs().max() < 2 * tolerance
