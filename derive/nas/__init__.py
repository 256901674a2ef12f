"""Neural architecture search from optimization algorithms (SCIS §9): DARTS with search spaces
derived from an algorithm's recurrence, HB initialisation, edge normalisation.

    from derive.nas import GENOTYPES, load_genotype
    GENOTYPES["darts_v2"]          # DARTS's published second-order cells
"""

from __future__ import annotations

from derive.nas.genotype import GENOTYPES, Genotype, from_json, load_genotype
from derive.nas.ops import OP_NAMES

__all__ = ["GENOTYPES", "OP_NAMES", "Genotype", "from_json", "load_genotype"]
