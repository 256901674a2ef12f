"""From continuous architecture weights to a genotype: which edges and operations each node keeps.

Input: w = softmax(α) per edge (SCIS (17)) and, for edge-normalised spaces, p = the per-node softmax
of β (SCIS (21)). Two rules, named by `SearchSpace.keep`:

- `top2` (DARTS `genotype()`, for `darts` and the history spaces such as `agd`): an edge's strength is
  max_{o ≠ none} w_o — times p_edge in an edge-normalised space (PC-DARTS's rule: the edge weight
  scales the row, so it decides which edges are kept, never which op an edge gets); keep the two
  strongest edges into each node (stable: ties go to the earlier edge, i.e. the lower input), strongest
  first, each with its argmax_{o ≠ none} w_o (ties to the earlier op of the α columns). SCIS §9.3:
  "the top-2 strongest non-zero operations from all previous nodes".
- `each` (the bounded-look-back spaces such as `heavyball`): every edge is kept with its
  argmax_{o ≠ none} w_o, in the space's edge order. For the HB space these are the 3 edges of (15),
  SCIS §9.3: "the top-3 strongest non-zero operations from x_{k−1} and x_{k−2} to x_k".

`none` never counts (quark0/darts #32: it would win everywhere), and ranking uses the softmax
probabilities, not raw α (khanrc/pt.darts #38).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from derive.nas.genotype import Gene, Genotype
from derive.nas.spaces import KEEP_EACH, KEEP_TOP2, SearchSpace


def _best(row: Sequence[float], ops: Sequence[str]) -> tuple[float, int]:
    """(max weight, its column) over the ops other than none; the first column wins a tie."""
    best, column = -1.0, -1
    for index, (value, op) in enumerate(zip(row, ops, strict=True)):
        if op != "none" and value > best:
            best, column = value, index
    return best, column


def derive_cell(
    space: SearchSpace, weights: torch.Tensor, edge_weights: torch.Tensor | None = None
) -> Gene:
    """The (op, input) pairs of every node for one cell type."""
    rows: list[list[float]] = weights.detach().double().cpu().tolist()
    scale: list[float] = (
        edge_weights.detach().double().cpu().tolist()
        if edge_weights is not None
        else [1.0] * len(rows)
    )
    edges = space.cell_edges()
    if len(rows) != len(edges):
        raise ValueError(f"{len(rows)} weight rows for {len(edges)} edges")
    gene = []
    for node in range(space.steps):
        index = space.node_edges(node)
        best = {i: _best(rows[i], space.ops) for i in index}
        if space.keep == KEEP_EACH:
            chosen = index
        elif space.keep == KEEP_TOP2:
            chosen = sorted(index, key=lambda i: -best[i][0] * scale[i])[:2]
        else:
            raise ValueError(space.keep)
        gene.append(tuple((space.ops[best[i][1]], edges[i].source) for i in chosen))
    return tuple(gene)


def derive_genotype(
    space: SearchSpace,
    normal: torch.Tensor,
    reduce: torch.Tensor,
    normal_edges: torch.Tensor | None = None,
    reduce_edges: torch.Tensor | None = None,
) -> Genotype:
    """The genotype of both cell types; every intermediate node is concatenated, SCIS (14)."""
    concat = tuple(range(2, space.steps + 2))
    return Genotype(
        normal=derive_cell(space, normal, normal_edges),
        normal_concat=concat,
        reduce=derive_cell(space, reduce, reduce_edges),
        reduce_concat=concat,
        space=space.name,
    )


__all__ = ["derive_cell", "derive_genotype"]
