"""`derive nas search` checks memory before the supernet is built: the counts it uses agree with
real supernets, and a search that cannot fit is one line, exit 2, nothing written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from train_fixtures import single_thread, write_cifar10  # noqa: F401

import derive.memcheck
import derive.nas.search
from derive.cli import main
from derive.errors import UserError
from derive.memcheck import activation_bytes_per_image
from derive.nas import build_supernet
from derive.nas.ops import OP_NAMES, make_search_op
from derive.nas.search import prepare_space, search_bytes
from derive.nas.searchconfig import SearchConfig
from derive.nas.supernet import op_weight_count, supernet_activation_count, supernet_weight_count

SPACES = ("darts", "heavyball", "agd", "gd", "nesterov")


def weight_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", OP_NAMES)
@pytest.mark.parametrize("channels", [2, 6])
@pytest.mark.parametrize("stride", [1, 2])
def test_op_weight_count_matches_the_built_op(name: str, channels: int, stride: int) -> None:
    assert op_weight_count(name, channels, stride) == weight_count(
        make_search_op(name, channels, stride)
    )


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize(("channels", "cells"), [(4, 3), (6, 5), (2, 7)])
def test_weight_count_matches_a_supernet_built_for_real(
    space: str, channels: int, cells: int
) -> None:
    net = build_supernet(space, channels=channels, cells=cells)
    assert supernet_weight_count(net.space, channels, cells) == weight_count(net)


def test_weight_count_follows_the_operation_set() -> None:
    ops = ("none", "skip_connect", "dil_conv_5x5")
    net = build_supernet("darts", channels=4, cells=4, ops=ops)
    assert supernet_weight_count(net.space, 4, 4) == weight_count(net)


@pytest.mark.parametrize("space", ["darts", "heavyball"])
def test_activation_count_is_below_what_a_forward_pass_keeps(space: str) -> None:
    net = build_supernet(space, channels=4, cells=4)
    kept = activation_bytes_per_image(net, (3, 8, 8))
    estimate = 4 * supernet_activation_count(net.space, 4, 4, 8)
    assert 0 < estimate <= kept


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_cifar10(tmp_path / "data", per_file=8, n_test=10).root


def test_a_search_too_large_for_memory_exits_2_before_anything(
    data: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the supernet was built")

    monkeypatch.setattr(derive.nas.search, "build", never)
    real = derive.memcheck.available_bytes  # capped, so the test holds on a machine of any size
    monkeypatch.setattr(derive.memcheck, "available_bytes", lambda d: min(real(d) or 2**36, 2**36))
    out = tmp_path / "run"
    argv = ["nas", "search", "--space", "darts", "--data-dir", str(data), "--out", str(out)]
    started = time.perf_counter()
    assert main([*argv, "--cells", "100", "--channels", "256"]) == 2
    assert time.perf_counter() - started < 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "--cells 100 --channels 256" in err and "memory" in err and "lower --cells" in err
    assert not out.exists()


def tiny(data: Path, out: Path) -> SearchConfig:
    return SearchConfig(
        space="heavyball",
        data_dir=str(data),
        out=str(out),
        cells=3,
        channels=4,
        image_size=8,
        batch_size=8,
        epochs=1,
        limit_images=16,  # one batch per half: the memory estimate does not depend on the count
        plot=False,
        device="cpu",
    )


def test_the_check_compares_the_estimate_with_free_memory(
    data: Path, tmp_path: Path, monkeypatch
) -> None:
    """Just below the estimate: refused, nothing written; at it: the search runs."""
    out = tmp_path / "run"
    config = tiny(data, out)
    needed = search_bytes(config, prepare_space(config))
    monkeypatch.setattr(derive.memcheck, "available_bytes", lambda device: needed - 1)
    with pytest.raises(UserError, match="needs at least"):
        derive.nas.search.run_search(config)
    assert not out.exists()
    monkeypatch.setattr(derive.memcheck, "available_bytes", lambda device: needed)
    summary = derive.nas.search.run_search(config)
    assert summary["epochs_completed"] == 1 and (out / "genotype.json").is_file()
