"""Genotype derivation on hand-made weights: DARTS's rule, PC-DARTS's β product, the HB keep-all rule."""

from __future__ import annotations

import numpy as np
import torch
from train_fixtures import single_thread  # noqa: F401

from derive.nas import build_supernet
from derive.nas.discretize import derive_cell, derive_genotype
from derive.nas.spaces import resolve_space

DARTS = resolve_space("darts")
AGD = resolve_space("agd")
HB = resolve_space("heavyball")


def quark0_parse(weights: np.ndarray, primitives: list[str]) -> list[tuple[str, int]]:
    """quark0/darts model_search.py `genotype._parse`, restated from its published code."""
    gene = []
    n, start = 2, 0
    for i in range(4):
        end = start + n
        W = weights[start:end].copy()
        edges = sorted(
            range(i + 2),
            key=lambda x: -max(W[x][k] for k in range(len(W[x])) if k != primitives.index("none")),
        )[:2]
        for j in edges:
            k_best = None
            for k in range(len(W[j])):
                if k != primitives.index("none"):
                    if k_best is None or W[j][k] > W[j][k_best]:
                        k_best = k
            gene.append((primitives[k_best], j))
        start = end
        n += 1
    return gene


def flat(gene) -> list[tuple[str, int]]:
    return [pair for node in gene for pair in node]


def test_darts_rule_matches_the_published_parser_on_random_weights() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        logits = rng.normal(size=(14, 8)) * rng.choice([0.01, 1.0, 5.0])
        w = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        got = flat(derive_cell(DARTS, torch.tensor(w)))
        assert got == quark0_parse(w, list(DARTS.ops))


def _rows(space, values: dict[int, dict[str, float]], fill: float = 0.0) -> torch.Tensor:
    """A weights matrix: `fill` everywhere, rows given by {edge: {op: weight}}."""
    w = torch.full((space.num_edges, len(space.ops)), fill, dtype=torch.float64)
    for edge, row in values.items():
        for op, value in row.items():
            w[edge, space.ops.index(op)] = value
    return w


def test_none_is_neither_ranked_nor_chosen() -> None:
    # node 0 (edges 0, 1): edge 0 is mostly `none`, edge 1 moderately a conv
    w = _rows(
        DARTS, {0: {"none": 0.9, "max_pool_3x3": 0.05}, 1: {"none": 0.1, "sep_conv_3x3": 0.2}}
    )
    node0 = derive_cell(DARTS, w)[0]
    assert node0 == (("sep_conv_3x3", 1), ("max_pool_3x3", 0))  # strongest first; never `none`


def test_ties_go_to_the_lower_input_and_the_earlier_op() -> None:
    w = _rows(DARTS, {}, fill=0.125)  # uniform: every edge and op ties
    gene = derive_cell(DARTS, w)
    assert gene[3] == (
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
    )  # first non-none column, inputs 0, 1


def test_ranking_uses_softmax_probabilities_not_raw_logits() -> None:
    """Edge 0: logits none 5, sep 4 → p(sep) ≈ 0.26; edge 1: sep 2, rest 0 → p(sep) ≈ 0.51 (by hand)."""
    net = build_supernet("darts", channels=4, cells=3)
    ops = list(net.space.ops)
    with torch.no_grad():
        net.alpha_normal.zero_()
        net.alpha_normal[0, ops.index("none")] = 5.0
        net.alpha_normal[0, ops.index("sep_conv_3x3")] = 4.0
        net.alpha_normal[1, ops.index("dil_conv_3x3")] = 2.0
        net.alpha_normal[2, ops.index("sep_conv_5x5")] = 3.5  # node 1's edges 2..4
    e0 = np.exp(4) / (np.exp(5) + np.exp(4) + 6)
    e1 = np.exp(2) / (np.exp(2) + 7)
    assert e1 > e0  # raw logits would rank edge 0 (4 > 2) first
    node0 = net.genotype().normal[0]
    assert node0 == (("dil_conv_3x3", 1), ("sep_conv_3x3", 0))


def test_edge_normalisation_decides_edges_but_never_ops() -> None:
    """PC-DARTS: strength p_edge·max w; node 3 has 5 edges (indices 9..13)."""
    w = _rows(
        AGD, {9: {"sep_conv_3x3": 0.5}, 10: {"dil_conv_5x5": 0.4}, 11: {"avg_pool_3x3": 0.3}}, 0.01
    )
    p = torch.full((14,), 0.2, dtype=torch.float64)
    assert derive_cell(AGD, w, p)[3] == (("sep_conv_3x3", 0), ("dil_conv_5x5", 1))
    p[9:14] = torch.tensor([0.1, 0.2, 0.6, 0.05, 0.05])  # 0.05, 0.08, 0.18 → edges 2, 1
    assert derive_cell(AGD, w, p)[3] == (("avg_pool_3x3", 2), ("dil_conv_5x5", 1))
    # scaling a row never changes its op: each kept edge has its unscaled row's best non-none op
    rng = np.random.default_rng(1)
    w = torch.tensor(rng.dirichlet(np.ones(9), size=14))
    p = torch.tensor(rng.dirichlet(np.ones(5), size=1)[0].tolist() * 3)[:14]
    ops, edges = list(AGD.ops), AGD.cell_edges()
    for node, pairs in enumerate(derive_cell(AGD, w, p)):
        for op, source in pairs:
            (row,) = [i for i, e in enumerate(edges) if e.node == node and e.source == source]
            assert op == ops[1 + int(np.argmax(w[row, 1:].numpy()))]


def test_hb_keeps_its_three_edges_each_with_its_strongest_nonzero_op() -> None:
    rng = np.random.default_rng(3)
    w = torch.tensor(rng.dirichlet(np.ones(9), size=12))
    w[4, 0] = 0.99  # node 1's second edge: `none` dominates, still kept with its best non-none op
    gene = derive_cell(HB, w)
    ops = list(HB.ops)
    for t, node in enumerate(gene):
        assert [src for _, src in node] == [t + 1, t + 1, t]  # ō₁, ō₂ from x_{t−1}, ō from x_{t−2}
        for i, (op, _) in enumerate(node):
            row = w[3 * t + i].tolist()
            assert op == ops[1 + int(np.argmax(row[1:]))]


def test_genotype_of_both_cells_is_valid_and_named_after_the_space() -> None:
    rng = np.random.default_rng(5)
    normal, reduce = (torch.tensor(rng.dirichlet(np.ones(9), size=14)) for _ in range(2))
    g = derive_genotype(AGD, normal, reduce, torch.full((14,), 0.3), torch.full((14,), 0.3))
    assert g.space == "agd" and g.normal_concat == g.reduce_concat == (2, 3, 4, 5)
    assert all(len(node) == 2 for node in g.normal + g.reduce)
