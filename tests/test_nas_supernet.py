"""The search supernet: DARTS's parameter count, structure, α/β apart from the weights, HB initialisation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from train_fixtures import single_thread  # noqa: F401

from derive.errors import UserError
from derive.nas import build_supernet
from derive.nas.archinit import mixture_logits


def test_darts_supernet_counts_as_published() -> None:
    """quark0/darts #16 logs `param size = 1.930618MB` for C = 16, 8 layers (α not counted)."""
    net = build_supernet("darts", channels=16, cells=8)
    assert sum(p.numel() for p in net.weights()) == 1_930_618
    assert sum(p.numel() for p in net.parameters()) == 1_930_618  # α left out, as DARTS's
    assert {"alpha_normal", "alpha_reduce"} <= set(net.state_dict())  # but saved with the model
    assert [c.reduction for c in net.cells_] == [i in (2, 5) for i in range(8)]
    assert net.classifier.in_features == 256
    assert [tuple(a.shape) for a in net.arch_parameters()] == [(14, 8), (14, 8)]


def test_search_bns_are_non_affine_and_pools_are_followed_by_bn() -> None:
    net = build_supernet("heavyball", channels=4, cells=3)
    assert net.stem[1].affine  # DARTS's stem BN is affine
    for cell in net.cells_:
        for module in cell.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert not module.affine
        for mixed in cell.ops:
            for name, op in zip(net.space.ops, mixed.ops, strict=True):
                if "pool" in name:
                    assert isinstance(op, nn.Sequential) and isinstance(op[1], nn.BatchNorm2d)


def test_architecture_parameters_are_apart_from_the_weights() -> None:
    net = build_supernet("agd", channels=4, cells=3)
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weights()}
    assert len(arch) == 4 and not arch & weights
    assert weights == {id(p) for p in net.parameters()}
    registered = {id(p) for m in net.modules() for p in m._parameters.values() if p is not None}
    assert arch | weights == registered
    # a weight optimizer built as the search builds it never moves α or β
    opt = torch.optim.SGD(net.weights(), lr=0.5, momentum=0.9, weight_decay=3e-4)
    before = [p.detach().clone() for p in net.arch_parameters()]
    loss = net(torch.randn(4, 3, 8, 8)).square().mean()
    loss.backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, net.arch_parameters(), strict=True))
    assert all(p.grad is not None for p in net.arch_parameters())  # they are in the graph


def test_edge_normalisation_is_a_softmax_per_node() -> None:
    net = build_supernet("agd", channels=4, cells=3, alpha_init="randn")
    p = net.edge_weights(False)
    sums = [float(p[a:b].detach().sum()) for a, b in [(0, 2), (2, 5), (5, 9), (9, 14)]]
    assert sums == pytest.approx([1.0] * 4)
    assert (
        net.edge_weights(True) is not None
        and build_supernet("darts", 4, 3).edge_weights(False) is None
    )


def test_zero_init_is_uniform_and_randn_is_small() -> None:
    zero = build_supernet("heavyball", channels=4, cells=3)
    assert all(torch.count_nonzero(a) == 0 for a in zero.arch_parameters())
    randn = build_supernet("heavyball", channels=4, cells=3, alpha_init="randn")
    assert 0 < float(randn.alpha_normal.detach().abs().max()) < 1e-2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cells": 2}, "--cells must be at least 3"),
        ({"cells": 101}, "--cells must be between 3 and 100"),
        ({"channels": 5}, "even"),
        ({"channels": 0}, "--channels must be between 2 and 256"),
        ({"channels": 258}, "--channels must be between 2 and 256"),
        ({"ops": ("sep_conv_3x3", "conv_7x7")}, "unknown operation"),
        ({"ops": ("none",)}, "besides none"),
    ],
)
def test_impossible_sizes_and_ops_are_refused(kwargs: dict, message: str) -> None:
    options = {"channels": 4, "cells": 3} | kwargs
    with pytest.raises(UserError, match=message):
        build_supernet("darts", **options)


def test_mixture_logits_are_the_log_of_the_target_softmax() -> None:
    ops = ("none", "skip_connect", "neg_skip_connect", "sep_conv_3x3")
    w = torch.softmax(
        mixture_logits(ops, {"skip_connect": 0.65, "neg_skip_connect": 0.35}, 0.99, torch.float64),
        0,
    )
    assert w.tolist() == pytest.approx([0.005, 0.99 * 0.65, 0.99 * 0.35, 0.005])
    one_hot = torch.softmax(
        mixture_logits(ops, {"skip_connect": 1.0, "neg_skip_connect": 0.0}, 0.99, torch.float64), 0
    )
    assert one_hot.tolist() == pytest.approx([0.01 / 3, 0.99, 0.01 / 3, 0.01 / 3])


@pytest.fixture
def float64():
    """Build in float64 (logits too), so near-one-hot weights are exact to ~1e-12."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _hand_cell(net, cell, s0, s1, state_coefficients):
    """The cell by hand: x_t = F_t(x_{t−1}) + c₀·x_{t−1} + c₁·x_{t−2}, F_t the T-edge's mixed op."""
    w = net.op_weights(cell.reduction)
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    for t in range(4):
        f = cell.ops[3 * t](states[t + 1], w[3 * t])  # edge kinds: T, state lag 0, state lag 1
        c0, c1 = state_coefficients
        states.append(f + c0 * states[t + 1] + c1 * states[t])
    return torch.cat(states[2:], dim=1)


def test_hb_init_computes_scis_18(float64) -> None:
    """With a near-one-hot margin in float64 the initial cell is x_t = F(x_{t−1}) + x_{t−1} − x_{t−2}."""
    torch.manual_seed(0)
    net = build_supernet("heavyball", channels=4, cells=3, start="hb", init_weight=1 - 1e-12)
    net = net.eval()
    cell = net.cells_[0]
    assert not cell.reduction
    s0, s1 = (
        torch.randn(2, 12, 8, 8, dtype=torch.float64),
        torch.randn(2, 12, 8, 8, dtype=torch.float64),
    )
    with torch.no_grad():
        got = cell(s0, s1, net.op_weights(False))
        want = _hand_cell(net, cell, s0, s1, (1.0, -1.0))
        wrong = _hand_cell(net, cell, s0, s1, (0.0, 0.0))
    assert float((got - want).abs().max()) < 1e-10
    assert float((got - wrong).abs().max()) > 0.1  # the identities matter
    # the T-edges start from random α (SCIS: "randomly initialized"), not one-hot
    t_rows = net.alpha_normal[0::3]
    assert float(t_rows.detach().abs().max()) < 1e-2 and float(t_rows.detach().std()) > 0


def test_hb_init_default_margin_puts_099_on_the_identities() -> None:
    net = build_supernet("heavyball", channels=4, cells=3, start="hb")
    w = net.op_weights(False).detach()
    ops = list(net.space.ops)
    assert float(w[1, ops.index("skip_connect")]) == pytest.approx(0.99)
    assert float(w[2, ops.index("neg_skip_connect")]) == pytest.approx(0.99)


def test_algo_init_starts_at_the_algorithm_coefficients(float64) -> None:
    """Heavy ball at β = 0.3: x_t = F(x_{t−1}) + 0.3·x_{t−1} − 0.3·x_{t−2}."""
    torch.manual_seed(1)
    net = build_supernet("heavyball", channels=4, cells=3, start="algo", init_weight=1 - 1e-12)
    net = net.eval()
    cell = net.cells_[0]
    s0, s1 = (
        torch.randn(2, 12, 8, 8, dtype=torch.float64),
        torch.randn(2, 12, 8, 8, dtype=torch.float64),
    )
    with torch.no_grad():
        got = cell(s0, s1, net.op_weights(False))
        want = _hand_cell(net, cell, s0, s1, (0.3, -0.3))
    assert float((got - want).abs().max()) < 1e-10


BIG_MOMENTUM = """
name = "big_momentum"
title = "Heavy ball with momentum 1.5"
states = ["x"]
[update]
"x[k+1]" = "x[k] - grad(x[k]) + 1.5*(x[k] - x[k-1])"
[initial]
"x[-1]" = "x[0]"
"""


@pytest.mark.parametrize(
    ("space", "start", "message"),
    [
        ("agd", "algo", "no fixed coefficient"),
        ("darts", "algo", "no fixed coefficient"),
        ("nesterov", "algo", "no state edges"),
        ("agd", "hb", "needs the heavy-ball space"),
        ("triple_momentum", "hb", "needs the heavy-ball space"),
    ],
)
def test_unrepresentable_starts_are_refused(space: str, start: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        build_supernet(space, channels=4, cells=3, start=start)


def test_a_coefficient_beyond_one_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "big.toml"
    spec.write_text(BIG_MOMENTUM, encoding="utf-8")
    build_supernet(str(spec), channels=4, cells=3)  # the space itself is fine
    with pytest.raises(UserError, match=r"\|c\| ≤ 1"):
        build_supernet(str(spec), channels=4, cells=3, start="algo")
    with pytest.raises(UserError, match="needs skip_connect"):
        build_supernet("heavyball", channels=4, cells=3, start="hb", ops=("none", "sep_conv_3x3"))


def test_triple_momentum_algo_init_is_representable() -> None:
    net = build_supernet("tmm", channels=4, cells=3, start="algo")
    w = net.op_weights(False).detach()
    ops = list(net.space.ops)
    c = net.space.kinds[2].value
    assert -1 < c < 0
    row = w[2]  # node 0's state edge
    assert float(
        row[ops.index("skip_connect")] - row[ops.index("neg_skip_connect")]
    ) == pytest.approx(0.99 * c)


def test_unread_input_has_no_preprocessing() -> None:
    net = build_supernet("gd", channels=4, cells=3)
    assert all(cell.preprocess0 is None for cell in net.cells_)
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)
