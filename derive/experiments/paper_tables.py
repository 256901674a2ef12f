"""The papers' PRINTED result tables, transcribed as data. These are the papers' numbers, never ours.

ACML'18 = Yang, Zhong, Shen, Lin, "Optimization-inspired structure design" (ACML 2018).
SCIS'23 = Yang, Shen, Li, Lin, "Optimization-inspired manual architecture design and neural
architecture search" (Sci China Inf Sci 2023).

- Simulation: ACML Table 2 and SCIS appendix Table B1 print the same numbers (train MSE after 1,000
  epochs, 10,000 pairs in dimension 100, sigmoid). Only the equation numbers in the headers differ:
  ACML numbers GD (7), HB (11), AGD (12), AGD2 (13), ADMM (14); SCIS numbers them (7), (10), (11), (12), (13).
- CIFAR: SCIS §8 Table 1 (with a Params column) and ACML Table 4 (no Params), error rates in %;
  "(+)" columns use the standard augmentation. Entries printed as "-" are None.

Reports show these only in columns labelled "printed"; a number from here never enters a column of ours.
"""

from __future__ import annotations

from dataclasses import dataclass

ACML_SIM = "ACML'18 Table 2"
SCIS_SIM = "SCIS'23 Table B1"

# Column order of the printed table, and each column's equation number in each paper.
SIM_COLUMNS: tuple[str, ...] = ("admm", "gd", "heavyball", "nesterov", "nesterov2")
SIM_EQUATIONS: dict[str, dict[str, str]] = {
    ACML_SIM: {
        "admm": "(14)",
        "gd": "(7)",
        "heavyball": "(11)",
        "nesterov": "(12)",
        "nesterov2": "(13)",
    },
    SCIS_SIM: {
        "admm": "(13)",
        "gd": "(7)",
        "heavyball": "(10)",
        "nesterov": "(11)",
        "nesterov2": "(12)",
    },
}

# depth -> algorithm -> printed MSE (identical in both papers).
SIM_PRINTED: dict[int, dict[str, float]] = {
    10: {
        "admm": 1.07576,
        "gd": 1.00644,
        "heavyball": 1.00443,
        "nesterov": 1.00270,
        "nesterov2": 1.00745,
    },
    20: {
        "admm": 1.07495,
        "gd": 1.00679,
        "heavyball": 1.00449,
        "nesterov": 1.00215,
        "nesterov2": 1.00227,
    },
    30: {
        "admm": 1.07665,
        "gd": 1.00652,
        "heavyball": 1.00455,
        "nesterov": 1.00204,
        "nesterov2": 1.00086,
    },
    40: {
        "admm": 1.07749,
        "gd": 1.00653,
        "heavyball": 1.00457,
        "nesterov": 1.00213,
        "nesterov2": 0.99964,
    },
}

SCIS_CIFAR = "SCIS'23 Table 1"
ACML_CIFAR = "ACML'18 Table 4"

# The four printed columns: (dataset, augmentation).
CIFAR_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("cifar10", False),
    ("cifar100", False),
    ("cifar10", True),
    ("cifar100", True),
)


@dataclass(frozen=True)
class PrintedCifarRow:
    """One printed row: the model as printed, our zoo name (None: not in the zoo), and its errors."""

    source: str
    printed_name: str
    zoo: str | None
    params: str | None  # as printed ("0.85M"); ACML prints none
    errors: tuple[float | None, float | None, float | None, float | None]  # CIFAR_COLUMNS order
    note: str = ""

    def error(self, dataset: str, augment: bool) -> float | None:
        return self.errors[CIFAR_COLUMNS.index((dataset, augment))]


_STAR_SCIS = (
    "'*': deep ResNet unstable on CIFAR, trained several times, the converged result reported"
)
_STAR_ACML = "'*': the result reported by Huang et al. (2017), not re-run"

CIFAR_PRINTED: tuple[PrintedCifarRow, ...] = (
    PrintedCifarRow(SCIS_CIFAR, "Network in Network", None, None, (10.41, 35.68, 8.81, None)),
    PrintedCifarRow(SCIS_CIFAR, "All-CNN", None, None, (9.08, None, 7.25, 33.71)),
    PrintedCifarRow(SCIS_CIFAR, "Deeply Supervised Net", None, None, (9.69, None, 7.97, 34.57)),
    PrintedCifarRow(SCIS_CIFAR, "Highway Network", None, None, (None, None, 7.72, 32.39)),
    PrintedCifarRow(SCIS_CIFAR, "ResNet (n = 9)", "resnet56", "0.85M", (10.05, 39.65, 5.32, 26.03)),
    PrintedCifarRow(SCIS_CIFAR, "HBNet (n = 9)", "hbnet56", "0.85M", (10.17, 38.52, 5.46, 26.0)),
    PrintedCifarRow(
        SCIS_CIFAR, "ResNet (n = 18)*", "resnet110", "1.7M", (9.17, 38.13, 5.06, 24.71), _STAR_SCIS
    ),
    PrintedCifarRow(SCIS_CIFAR, "HBNet (n = 18)", "hbnet110", "1.7M", (8.66, 36.4, 5.04, 23.93)),
    PrintedCifarRow(
        SCIS_CIFAR, "DenseNet (k = 12, L = 40)", "densenet40", "1.0M", (7.0, 27.55, 5.24, 24.42)
    ),
    PrintedCifarRow(
        SCIS_CIFAR, "AGDNet (k = 12, L = 40)", "agdnet40", "1.0M", (6.44, 26.33, 5.2, 24.87)
    ),
    PrintedCifarRow(
        SCIS_CIFAR, "DenseNet (k = 12, L = 52)", "densenet52", "1.4M", (6.05, 26.3, 5.09, 24.33)
    ),
    PrintedCifarRow(
        SCIS_CIFAR, "AGDNet (k = 12, L = 52)", "agdnet52", "1.4M", (5.75, 24.92, 4.94, 23.84)
    ),
    PrintedCifarRow(ACML_CIFAR, "ResNet (n = 9)", "resnet56", None, (10.05, 39.65, 5.32, 26.03)),
    PrintedCifarRow(ACML_CIFAR, "HB-Net (16) (n = 9)", "hbnet56", None, (10.17, 38.52, 5.46, 26.0)),
    PrintedCifarRow(ACML_CIFAR, "ResNet (n = 18)", "resnet110", None, (9.17, 38.13, 5.06, 24.71)),
    PrintedCifarRow(
        ACML_CIFAR, "HB-Net (16) (n = 18)", "hbnet110", None, (8.66, 36.4, 5.04, 23.93)
    ),
    PrintedCifarRow(
        ACML_CIFAR,
        "DenseNet (k = 12, L = 40)*",
        "densenet40",
        None,
        (7.0, 27.55, 5.24, 24.42),
        _STAR_ACML,
    ),
    PrintedCifarRow(
        ACML_CIFAR, "AGD-Net (18) (k = 12, L = 40)", "agdnet40", None, (6.44, 26.33, 5.2, 24.87)
    ),
    PrintedCifarRow(
        ACML_CIFAR, "DenseNet (k = 12, L = 52)", "densenet52", None, (6.05, 26.3, 5.09, 24.33)
    ),
    PrintedCifarRow(
        ACML_CIFAR, "AGD-Net (18) (k = 12, L = 52)", "agdnet52", None, (5.75, 24.92, 4.94, 23.84)
    ),
)


def printed_cifar(zoo: str, source: str) -> PrintedCifarRow | None:
    """The printed row of `source` for zoo model `zoo`, or None when that table has none."""
    for row in CIFAR_PRINTED:
        if row.zoo == zoo and row.source == source:
            return row
    return None
