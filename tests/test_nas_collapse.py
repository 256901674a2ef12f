"""Which operations of a genotype's cells hold weights, and when a cell counts as collapsed.

A stride-2 ±identity (on inputs 0 and 1 of a reduction cell) is ±FactorizedReduce, with weights;
the counts are checked against the evaluation network built for real.
"""

from __future__ import annotations

import pytest
from torch import nn

from derive.nas import GENOTYPES, build_network
from derive.nas.genotype import Genotype
from derive.nas.ops import OP_NAMES

CONCAT = (2, 3, 4, 5)


def cell_of(ops: list[tuple[str, int]]) -> tuple[tuple[tuple[str, int], ...], ...]:
    """Four nodes, node i reading the given (op, source) pairs whose source exists before it."""
    return tuple(tuple((op, source) for op, source in ops if source < i + 2) for i in range(4))


def genotype(normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> Genotype:
    return Genotype(
        normal=cell_of(normal),
        normal_concat=CONCAT,
        reduce=cell_of(reduce),
        reduce_concat=CONCAT,
        space="darts",
    )


def built_weights(net: nn.Module, reduction: bool, gene) -> list[int]:
    """Per operation of the first cell of that type: the weights its module holds (0: no module)."""
    cell = next(c for c in net.modules() if getattr(c, "reduction", None) is reduction)
    counts = []
    for i, node in enumerate(gene):
        for j in range(len(node)):
            module = getattr(cell, f"x{i}_op{j}", None)
            counts.append(0 if module is None else sum(p.numel() for p in module.parameters()))
    return counts


EVERY_OP = genotype(
    [(op, s) for op in OP_NAMES[:5] for s in (0, 1)],
    [(op, s) for op in OP_NAMES for s in (0, 1, 2)],
)


@pytest.mark.parametrize("name", [*GENOTYPES, "every-op"])
@pytest.mark.parametrize("reduction", [False, True])
def test_parameter_free_agrees_with_the_built_network(name: str, reduction: bool) -> None:
    g = EVERY_OP if name == "every-op" else GENOTYPES[name]
    net = build_network(g, channels=4, cells=5)
    gene, _ = g.cell(reduction)
    assert g.parameter_free(reduction) == [w == 0 for w in built_weights(net, reduction, gene)]


def test_stride_two_identities_are_not_a_collapse() -> None:
    skips = [("skip_connect", 0), ("neg_skip_connect", 1)]
    g = genotype(skips, skips)
    assert g.collapsed(False)  # ±x: no weights
    assert not g.collapsed(True)  # ±FactorizedReduce on inputs 0 and 1: weights
    assert not any(g.parameter_free(True))


def test_reduction_cells_of_pools_and_inner_identities_collapse() -> None:
    ops = [("max_pool_3x3", 0), ("avg_pool_3x3", 1), ("skip_connect", 2), ("none", 3)]
    g = genotype(ops, ops)
    assert g.collapsed(False) and g.collapsed(True)
    with_conv = genotype(ops, [*ops, ("sep_conv_3x3", 3)])
    assert with_conv.collapsed(False) and not with_conv.collapsed(True)
