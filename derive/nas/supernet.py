"""The search supernet (DARTS's model_search.py, Liu et al. 2019) over any search space.

- MixedOp: ō(x) = Σ_o w_o·o(x), w = softmax(α) of the edge, SCIS (16)-(17); non-affine BNs,
  pools followed by a BN (`make_search_op`).
- SearchCell: preprocess0 = FactorizedReduce after a reduction cell, else ReLU-conv1×1-BN;
  preprocess1 = ReLU-conv1×1-BN (non-affine); node t = Σ over its edges of [p_e·] ō_e(x_source),
  SCIS (15)/(19)/(20); output = the concatenation of the nodes, SCIS (14). Stride 2 on the edges
  from the two inputs of a reduction cell.
- SearchNetwork: stem conv3×3 (3C) + BN, `cells` cells with reductions at cells//3 and 2·cells//3
  (channels doubling there), global average pool, linear classifier. α (edges × ops) per cell type,
  shared by every cell of that type; β (one per edge) for edge-normalised spaces, p = softmax of β
  over the edges into each node, SCIS (21).

The architecture parameters are registered parameters (so `state_dict`, `.to()` and `.double()`
carry them), but as in DARTS — whose α are not `nn.Parameter`s — `parameters()` and
`named_parameters()` leave them out: `parameters()` = `weights()` is what the weight optimizer gets,
and the parameter count is DARTS's (1,930,618 at 16 channels, 8 cells). `arch_parameters()` gives
them. (A module holding a SearchNetwork as a child would list them again: pass `weights()`.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from derive.errors import UserError
from derive.limits import check_nas_sizes
from derive.nas.archinit import initial_alphas, initial_betas
from derive.nas.discretize import derive_genotype
from derive.nas.genotype import Genotype
from derive.nas.ops import OP_NAMES, FactorizedReduce, ReLUConvBN, make_search_op
from derive.nas.spaces import SearchSpace, resolve_space

ARCH_NAMES = ("alpha_normal", "alpha_reduce", "beta_normal", "beta_reduce")


class MixedOp(nn.Module):
    """ō(x) = Σ_o w_o·o(x) over the space's operations, SCIS (16)."""

    def __init__(self, ops: tuple[str, ...], channels: int, stride: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_search_op(name, channels, stride) for name in ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops, strict=True))  # type: ignore[return-value]


class SearchCell(nn.Module):
    """One cell of the supernet: the space's mixed edges over the two preprocessed inputs."""

    def __init__(
        self,
        space: SearchSpace,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.steps = space.steps
        self.edges = space.cell_edges()
        self.node_edges = [space.node_edges(node) for node in range(space.steps)]
        self.preprocess0: nn.Module | None = None
        self.preprocess1: nn.Module | None = None
        if space.reads_input(0):
            self.preprocess0 = (
                FactorizedReduce(c_prev_prev, channels, affine=False)
                if reduction_prev
                else ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=False)
            )
        if space.reads_input(1):
            self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0, affine=False)
        self.ops = nn.ModuleList(
            MixedOp(space.ops, channels, 2 if reduction and edge.source < 2 else 1)
            for edge in self.edges
        )

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        states: list[torch.Tensor | None] = [
            self.preprocess0(s0) if self.preprocess0 is not None else None,
            self.preprocess1(s1) if self.preprocess1 is not None else None,
        ]
        for node in range(self.steps):  # edges come node by node, each reading earlier states
            total: torch.Tensor | int = 0
            for index in self.node_edges[node]:
                out = self.ops[index](states[self.edges[index].source], weights[index])
                total = total + (out if edge_weights is None else edge_weights[index] * out)
            states.append(total)  # type: ignore[arg-type]
        return torch.cat(states[2:], dim=1)  # type: ignore[arg-type]


class SearchNetwork(nn.Module):
    """The DARTS search network over `space`: stem, cells, classifier, and α (and β)."""

    def __init__(
        self,
        space: SearchSpace,
        channels: int = 16,
        cells: int = 8,
        num_classes: int = 10,
        stem_multiplier: int = 3,
        alpha_init: str = "zero",
        start: str | None = None,
        init_weight: float = 0.99,
    ) -> None:
        super().__init__()
        check_sizes(channels, cells, num_classes)
        self.space = space
        self.channels, self.cells, self.num_classes = channels, cells, num_classes
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
        )
        plan = cell_plan(space.steps, channels, cells, stem_multiplier)
        self.cells_ = nn.ModuleList(
            SearchCell(space, p.c_prev_prev, p.c_prev, p.channels, p.reduction, p.reduction_prev)
            for p in plan
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(space.steps * plan[-1].channels, num_classes)
        self.alpha_normal = nn.Parameter(initial_alphas(space, alpha_init, start, init_weight))
        self.alpha_reduce = nn.Parameter(initial_alphas(space, alpha_init, start, init_weight))
        if space.normalised:
            self.beta_normal = nn.Parameter(initial_betas(space, alpha_init))
            self.beta_reduce = nn.Parameter(initial_betas(space, alpha_init))
        self._slices = [
            (min(idx), max(idx) + 1) for idx in (space.node_edges(n) for n in range(space.steps))
        ]

    def arch_parameters(self) -> list[nn.Parameter]:
        """α (normal, reduce) and, for edge-normalised spaces, β (normal, reduce)."""
        return [getattr(self, name) for name in ARCH_NAMES if hasattr(self, name)]

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, nn.Parameter]]:
        """The weights' names and tensors; α and β are left out (see the module docstring)."""
        arch = {id(p) for p in self.arch_parameters()}
        for name, param in super().named_parameters(prefix, recurse, remove_duplicate):
            if id(param) not in arch:
                yield name, param

    def named_weights(self) -> dict[str, nn.Parameter]:
        return dict(self.named_parameters())

    def weights(self) -> list[nn.Parameter]:
        """Every parameter but the architecture's: what the weight optimizer gets."""
        return list(self.parameters())

    def edge_weights(self, reduction: bool) -> torch.Tensor | None:
        """p_e = softmax of β over the edges into each node, SCIS (21); None without normalisation."""
        if not self.space.normalised:
            return None
        beta = self.beta_reduce if reduction else self.beta_normal
        return torch.cat([F.softmax(beta[a:b], dim=-1) for a, b in self._slices])

    def op_weights(self, reduction: bool) -> torch.Tensor:
        """w = softmax(α) per edge, SCIS (17)."""
        return F.softmax(self.alpha_reduce if reduction else self.alpha_normal, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        weights = {False: self.op_weights(False), True: self.op_weights(True)}
        edges = {False: self.edge_weights(False), True: self.edge_weights(True)}
        for cell in self.cells_:
            s0, s1 = s1, cell(s0, s1, weights[cell.reduction], edges[cell.reduction])
        return self.classifier(self.global_pooling(s1).flatten(1))

    def genotype(self) -> Genotype:
        """The discrete cells the current α (and β) give (derive.nas.discretize)."""
        with torch.no_grad():
            return derive_genotype(
                self.space,
                self.op_weights(False),
                self.op_weights(True),
                self.edge_weights(False),
                self.edge_weights(True),
            )


@dataclasses.dataclass(frozen=True)
class CellShape:
    """One cell of the supernet: its input and own channel counts, and whether it (or the cell
    before it) is a reduction cell; `scale` is how many times the resolution was halved by its end."""

    c_prev_prev: int
    c_prev: int
    channels: int
    reduction: bool
    reduction_prev: bool
    scale: int


def cell_plan(steps: int, channels: int, cells: int, stem_multiplier: int = 3) -> list[CellShape]:
    """The cells of a supernet, as SearchNetwork builds them (channels double at each reduction)."""
    c_prev_prev = c_prev = stem_multiplier * channels
    c_curr, reduction_prev, scale = channels, False, 0
    plan = []
    for i in range(cells):
        reduction = i in reduction_indices(cells)
        if reduction:
            c_curr, scale = 2 * c_curr, scale + 1
        plan.append(CellShape(c_prev_prev, c_prev, c_curr, reduction, reduction_prev, scale))
        reduction_prev = reduction
        c_prev_prev, c_prev = c_prev, steps * c_curr
    return plan


def op_weight_count(name: str, channels: int, stride: int) -> int:
    """The weights of `make_search_op(name, channels, stride)`, counted without building it.

    Search BNs are not affine (no weights); the stride-2 identities are FactorizedReduce, whose two
    1×1 convolutions of C → C/2 hold C² weights."""
    kernel = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "dil_conv_3x3": 3, "dil_conv_5x5": 5}
    if name in ("skip_connect", "neg_skip_connect"):
        return 0 if stride == 1 else channels * channels
    if name.startswith("dil_conv"):
        return channels * kernel[name] ** 2 + channels * channels  # depthwise k×k + pointwise
    if name.startswith("sep_conv"):
        return 2 * (channels * kernel[name] ** 2 + channels * channels)  # two DilConv halves
    if name in OP_NAMES:
        return 0  # none, the pools (their BN is not affine)
    raise UserError(f"unknown operation {name!r}; known: {', '.join(OP_NAMES)}")


def supernet_weight_count(
    space: SearchSpace,
    channels: int,
    cells: int,
    num_classes: int = 10,
    stem_multiplier: int = 3,
) -> int:
    """`len(weights())` of SearchNetwork(space, channels, cells, ...) in numbers, without building it:
    the memory check of a search runs before the (possibly huge) supernet is allocated."""
    c_stem = stem_multiplier * channels
    total = 3 * c_stem * 9 + 2 * c_stem  # stem conv 3×3 and its affine BN
    plan = cell_plan(space.steps, channels, cells, stem_multiplier)
    sources = [edge.source for edge in space.cell_edges()]
    reads0, reads1 = 0 in sources, 1 in sources
    for cell in plan:
        c = cell.channels
        # preprocess0 is FactorizedReduce or a 1×1 ReLUConvBN: c_prev_prev·C weights either way
        total += c * (cell.c_prev_prev * reads0 + cell.c_prev * reads1)
        for stride in (1, 2):
            edges = sum((2 if cell.reduction and s < 2 else 1) == stride for s in sources)
            total += edges * sum(op_weight_count(op, c, stride) for op in space.ops)
    return total + (space.steps * plan[-1].channels + 1) * num_classes


def supernet_activation_count(
    space: SearchSpace, channels: int, cells: int, image_size: int
) -> int:
    """A lower bound on the numbers backward keeps per image: every weighted operation output
    w_o·o(x) of every mixed edge (autograd keeps o(x) for the gradient of α), nothing else."""
    total = 0
    outputs = sum(op != "none" for op in space.ops)
    for cell in cell_plan(space.steps, channels, cells):
        side = image_size // 2**cell.scale
        total += space.num_edges * outputs * cell.channels * side * side
    return total


def reduction_indices(cells: int) -> tuple[int, int]:
    """The reduction cells of a network of `cells` cells (DARTS: cells//3 and 2·cells//3)."""
    return cells // 3, 2 * cells // 3


def check_sizes(channels: int, cells: int, num_classes: int = 10) -> None:
    """UserError unless the sizes build a valid network: derive.limits.check_nas_sizes (the rule
    `derive nas network` follows too) and at least 2 classes."""
    check_nas_sizes(channels, cells)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise UserError(f"num_classes must be an integer >= 2, got {num_classes!r}")


def with_ops(space: SearchSpace, ops: tuple[str, ...] | list[str] | None) -> SearchSpace:
    """The space over another operation set (canonical Table 3 order); UserError on unknown names."""
    if ops is None:
        return space
    unknown = [op for op in ops if op not in OP_NAMES]
    if unknown:
        raise UserError(
            f"unknown operation(s) {', '.join(map(repr, unknown))}; known: {', '.join(OP_NAMES)}"
        )
    if len(set(ops)) != len(ops):
        raise UserError(f"--ops repeats an operation: {','.join(ops)}")
    if not set(ops) - {"none"}:
        raise UserError("--ops needs at least one operation besides none")
    return dataclasses.replace(space, ops=tuple(op for op in OP_NAMES if op in ops))


def build_supernet(
    space: str | SearchSpace,
    channels: int = 16,
    cells: int = 8,
    num_classes: int = 10,
    alpha_init: str = "zero",
    start: str | None = None,
    init_weight: float = 0.99,
    coefficients: dict[str, float] | None = None,
    ops: tuple[str, ...] | None = None,
) -> SearchNetwork:
    """The search supernet of a space name (`darts`, `heavyball`, `agd`, any `--algo`) or SearchSpace.

    `start`: None, "hb" (SCIS §9.1 HB initialisation) or "algo" (the algorithm's coefficients).
    """
    resolved = space if isinstance(space, SearchSpace) else resolve_space(space, coefficients)
    resolved = with_ops(resolved, ops)
    return SearchNetwork(
        resolved,
        channels=channels,
        cells=cells,
        num_classes=num_classes,
        alpha_init=alpha_init,
        start=start,
        init_weight=init_weight,
    )


__all__ = [
    "ARCH_NAMES",
    "CellShape",
    "MixedOp",
    "SearchCell",
    "SearchNetwork",
    "build_supernet",
    "cell_plan",
    "check_sizes",
    "op_weight_count",
    "reduction_indices",
    "supernet_activation_count",
    "supernet_weight_count",
    "with_ops",
]
