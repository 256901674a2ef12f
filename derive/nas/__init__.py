"""Neural architecture search from optimization algorithms (SCIS §9): DARTS with search spaces
derived from an algorithm's recurrence, HB initialisation, edge normalisation.

    from derive.nas import GENOTYPES, load_genotype
    GENOTYPES["darts_v2"]          # DARTS's published second-order cells
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from derive.nas.genotype import Genotype

_LAZY = {
    "GENOTYPES": "derive.nas.genotype",
    "Genotype": "derive.nas.genotype",
    "from_json": "derive.nas.genotype",
    "load_genotype": "derive.nas.genotype",
    "OP_NAMES": "derive.nas.ops",
}
"""Names loaded on first use, so that derive.nas.searchconfig (read by `derive --help`) needs no torch."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'derive.nas' has no attribute {name!r}")


__all__ = [
    "GENOTYPES",
    "OP_NAMES",
    "Genotype",
    "build_network",
    "build_supernet",
    "from_json",
    "load_genotype",
]


def build_network(
    genotype: Genotype | str,
    channels: int = 36,
    cells: int = 20,
    num_classes: int = 10,
    auxiliary: bool = False,
) -> object:
    """The evaluation network of a genotype (DARTS's NetworkCIFAR shape), from its generated code."""
    from derive.nas.network import build_network as build  # deferred: torch, see _LAZY

    return build(
        genotype, channels=channels, cells=cells, num_classes=num_classes, auxiliary=auxiliary
    )


def build_supernet(space: str, channels: int = 16, cells: int = 8, **options: object) -> object:
    """The search supernet of a space (`darts`, `heavyball`, `agd`, or any `derive network --algo`)."""
    from derive.nas.supernet import build_supernet as build  # deferred: torch, see _LAZY

    return build(space, channels=channels, cells=cells, **options)
