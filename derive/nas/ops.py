"""The candidate operations of SCIS Table 3, as DARTS defines them (Liu et al., ICLR 2019).

Every operation maps C channels to C channels; on a reduction edge (stride 2) it also halves the
resolution. Convolutions have no bias; every BatchNorm inside an operation takes `affine` (False in
the search supernet, True in the evaluation network). SCIS adds one operation to DARTS's eight:

- negative identity, x ↦ −x, the x_{t−2} term of heavy ball (β₂ = −1 in HBNet, SCIS (18)); on a
  reduction edge it is the negation of DARTS's stride-2 identity, −FactorizedReduce.

The order of `OP_NAMES` fixes the column of each operation in the architecture weights α.
The module classes need only torch: `derive nas network` copies the ones a genotype uses into the
file it writes, which then imports nothing of derive.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from derive.errors import UserError

OP_NAMES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "neg_skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
"""SCIS Table 3: zero, 3×3 max/avg pooling, identity, negative identity, 3×3/5×5 separable, 3×3/5×5 dilated."""

PARAMETER_FREE: frozenset[str] = frozenset(
    {"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "neg_skip_connect"}
)
"""Operations without weights at stride 1 (a cell of only these is the DARTS "collapse")."""


class ReLUConvBN(nn.Module):
    """ReLU → k×k convolution → BN (DARTS's preprocessing of a cell's inputs)."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """ReLU → depthwise k×k (dilated) → pointwise 1×1 → BN: one ReLU, one BN."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool,
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                c_in,
                c_in,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=c_in,
                bias=False,
            ),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """Two DilConv halves with dilation 1; only the first depthwise convolution carries the stride."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            DilConv(
                c_in=c_in,
                c_out=c_in,
                kernel_size=kernel_size,
                stride=stride,
                padding=padding,
                dilation=1,
                affine=affine,
            ),
            DilConv(
                c_in=c_in,
                c_out=c_out,
                kernel_size=kernel_size,
                stride=1,
                padding=padding,
                dilation=1,
                affine=affine,
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Identity(nn.Module):
    """x ↦ x (skip_connect at stride 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class NegIdentity(nn.Module):
    """x ↦ −x (neg_skip_connect at stride 1), SCIS Table 3's negative identity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


class Negate(nn.Module):
    """x ↦ −op(x): negative identity on a reduction edge is −FactorizedReduce."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.op(x)


class Zero(nn.Module):
    """x ↦ 0 (subsampled first on a reduction edge, so the shape is right)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """ReLU → [1×1 stride-2 conv of x, 1×1 stride-2 conv of x shifted by one pixel] → BN.

    Halves the resolution with C_out/2 channels from each branch, so C_out must be even and the
    spatial size too (the two branches differ by a row and a column on odd sizes).
    """

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"factorized reduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def _skip(c: int, stride: int, affine: bool) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(c, c, affine)


def _neg_skip(c: int, stride: int, affine: bool) -> nn.Module:
    return NegIdentity() if stride == 1 else Negate(FactorizedReduce(c, c, affine))


def _check_even(channels: int, stride: int) -> None:
    """UserError when a reduction edge's factorized reduce could not split `channels` in halves."""
    if stride != 1 and channels % 2:
        raise UserError(
            f"factorized reduce needs an even channel count, got {channels} "
            "(use an even --channels)"
        )


OPS: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3x3": lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda c, stride, affine: nn.AvgPool2d(
        3, stride=stride, padding=1, count_include_pad=False
    ),
    "skip_connect": _skip,
    "neg_skip_connect": _neg_skip,
    "sep_conv_3x3": lambda c, stride, affine: SepConv(
        c_in=c, c_out=c, kernel_size=3, stride=stride, padding=1, affine=affine
    ),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(
        c_in=c, c_out=c, kernel_size=5, stride=stride, padding=2, affine=affine
    ),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(
        c_in=c, c_out=c, kernel_size=3, stride=stride, padding=2, dilation=2, affine=affine
    ),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(
        c_in=c, c_out=c, kernel_size=5, stride=stride, padding=4, dilation=2, affine=affine
    ),
}
assert tuple(OPS) == OP_NAMES


def make_op(name: str, channels: int, stride: int, affine: bool) -> nn.Module:
    """The operation `name` on `channels` channels (stride 2 on reduction edges), as DARTS builds it."""
    try:
        factory = OPS[name]
    except KeyError:
        raise UserError(f"unknown operation {name!r}; known: {', '.join(OP_NAMES)}") from None
    if name in ("skip_connect", "neg_skip_connect"):
        _check_even(channels, stride)
    return factory(channels, stride, affine)


def make_search_op(name: str, channels: int, stride: int) -> nn.Module:
    """The operation as the search supernet holds it: non-affine BNs, and a pool followed by a BN."""
    op = make_op(name, channels, stride, affine=False)
    if "pool" in name:
        return nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
    return op


def is_identity(op: nn.Module) -> bool:
    """True for the stride-1 identities (±x), which drop-path leaves alone in the evaluation network."""
    return isinstance(op, (Identity, NegIdentity))


__all__ = [
    "OPS",
    "OP_NAMES",
    "PARAMETER_FREE",
    "DilConv",
    "FactorizedReduce",
    "Identity",
    "NegIdentity",
    "Negate",
    "ReLUConvBN",
    "SepConv",
    "Zero",
    "is_identity",
    "make_op",
    "make_search_op",
]
