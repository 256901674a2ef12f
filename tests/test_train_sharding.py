"""Sharding of the epoch plan across ranks: pure functions, no processes (milliseconds)."""

from __future__ import annotations

import itertools

import pytest
import torch

from derive.train.augment import AugmentOptions, BatchMaker, Normalizer, epoch_plan
from derive.train.sharding import epoch_order, epoch_shares, eval_range, split_range

CASES = [(n, b, w) for n in (37, 64, 65, 69, 200) for b in (8, 32) for w in (1, 2, 4)]


def _single_steps(n: int, b: int) -> list[list[int]]:
    """The positions of each single-process step, written out independently: 0..B-1, B..2B-1, ..."""
    positions = list(range(n))
    return [positions[k : k + b] for k in range(0, n, b)]


@pytest.mark.parametrize("n, b, w", CASES)
def test_ranks_together_are_the_single_process_steps_without_overlap(n, b, w):
    per_rank = [epoch_shares(n, b, r, w) for r in range(w)]
    steps = _single_steps(n, b)
    assert all(len(shares) == len(steps) for shares in per_rank)  # every rank joins every step
    for k, step in enumerate(steps):
        real = [list(range(s.start, s.stop)) for s in (shares[k] for shares in per_rank) if s.count]
        flat = [p for part in real for p in part]
        assert flat == step  # rank order, contiguous: the single-process batch exactly
        assert len(set(flat)) == len(flat)
        counts = [shares[k].count for shares in per_rank]
        assert sum(counts) == len(step)
        if len(step) == b:  # full steps split evenly, weight exactly 1
            assert counts == [b // w] * w
            assert all(shares[k].weight == 1.0 for shares in per_rank)
        else:  # the short last step: near-equal parts of 2 rows or more, on the first ranks
            real = [c for c in counts if c]
            assert max(real) - min(real) <= 1 and counts == real + [0] * (w - len(real))
            assert min(real) >= min(2, len(step)) and len(real) == min(w, max(1, len(step) // 2))
        # every rank computes rows (BatchNorm needs 2 of them), stand-ins included
        assert all(shares[k].stop - shares[k].start >= min(2, len(step)) for shares in per_rank)


@pytest.mark.parametrize("n, b, w", CASES)
def test_weighted_rank_means_average_to_the_global_mean(n, b, w):
    """DDP averages (1/W) sum_r weight_r * mean_r(g): that must be mean_step(g), for any g."""
    g = torch.randn(n, 3, dtype=torch.float64)
    for k, step in enumerate(_single_steps(n, b)):
        ddp_average = torch.zeros(3, dtype=torch.float64)
        for r in range(w):
            share = epoch_shares(n, b, r, w)[k]
            rows = g[share.start : share.stop]
            ddp_average += share.weight * rows.mean(0) / w
            if share.count == 0:  # a stand-in row that must add nothing
                assert share.weight == 0.0 and share.stop - share.start == min(2, len(step))
        torch.testing.assert_close(ddp_average, g[step].mean(0))


def test_a_short_tail_with_fewer_rows_than_ranks_gets_stand_in_rows():
    shares = [epoch_shares(65, 32, r, 4)[-1] for r in range(4)]  # the last step has 1 row
    assert [s.count for s in shares] == [1, 0, 0, 0]
    assert [s.weight for s in shares] == [4.0, 0.0, 0.0, 0.0]
    shares = [epoch_shares(69, 32, r, 4)[-1] for r in range(4)]  # 5 rows: 3 + 2 on two ranks
    assert [(s.start, s.stop, s.count) for s in shares] == [
        (64, 67, 3),
        (67, 69, 2),
        (64, 66, 0),
        (64, 66, 0),
    ]
    assert [s.weight for s in shares] == [12 / 5, 8 / 5, 0.0, 0.0]


def test_split_range_by_hand():
    assert [split_range(0, 13, r, 2) for r in range(2)] == [(0, 7), (7, 13)]
    assert [split_range(10, 20, r, 4) for r in range(4)] == [(10, 13), (13, 16), (16, 18), (18, 20)]


@pytest.mark.parametrize("n, w", [(60, 2), (61, 4), (3, 4), (1017, 8)])
def test_eval_parts_cover_the_set_once(n, w):
    parts = [list(range(n))[eval_range(n, r, w)] for r in range(w)]
    assert [i for part in parts for i in part] == list(range(n))


def test_epoch_order_is_the_cifar_plans_order_and_depends_on_seed_and_epoch():
    plan = epoch_plan(50, 3, 2, 4, True, torch.device("cpu"))
    assert torch.equal(epoch_order(50, 3, 2), plan.order)
    assert not torch.equal(epoch_order(50, 3, 2), epoch_order(50, 3, 3))
    assert not torch.equal(epoch_order(50, 3, 2), epoch_order(50, 4, 2))
    assert sorted(epoch_order(50, 3, 2).tolist()) == list(range(50))


def _images_of_epoch(n, b, w, seed, epoch):
    """The image indices each global step trains on, gathered from W ranks."""
    order = epoch_order(n, seed, epoch)
    per_rank = [epoch_shares(n, b, r, w) for r in range(w)]
    return [
        [int(i) for shares in per_rank if shares[k].count for i in order[shares[k].rows]]
        for k in range(len(per_rank[0]))
    ]


def test_resume_on_another_world_size_continues_the_same_batches():
    n, b, seed = 200, 32, 7
    run = {w: [_images_of_epoch(n, b, w, seed, e) for e in (1, 2, 3)] for w in (1, 2, 4, 8)}
    for w, other in itertools.combinations(run, 2):
        assert run[w] == run[other]
    # epoch 1 on 4 ranks, then epochs 2-3 on 2 ranks: the batches a 1-process run trains on
    resumed = run[4][:1] + [_images_of_epoch(n, b, 2, seed, e) for e in (2, 3)]
    assert resumed == run[1]
    assert all(sorted(sum(epoch, [])) == list(range(n)) for epoch in run[1])  # each image once


def test_rank_batches_of_the_device_pipeline_concatenate_to_the_single_process_batches():
    """Crops and flips too: they are drawn per position for the whole epoch, not per rank."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (45, 3, 8, 8), dtype=torch.uint8, generator=gen)
    labels = torch.arange(45)
    maker = BatchMaker(
        images,
        labels,
        Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu")),
        AugmentOptions(pad=2),
    )
    single = list(maker.train_batches(16, seed=5, epoch=2))
    ranks = [
        list(maker.train_batches(16, 5, 2, rows=[s.rows for s in epoch_shares(45, 16, r, 2)]))
        for r in range(2)
    ]
    for k, (x, y) in enumerate(single):
        torch.testing.assert_close(torch.cat([ranks[0][k][0], ranks[1][k][0]]), x, rtol=0, atol=0)
        assert torch.equal(torch.cat([ranks[0][k][1], ranks[1][k][1]]), y)
