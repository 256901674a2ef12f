"""The papers' printed energies Ψ(u), u = Uᵢᵀx, transcribed exactly as printed (errors included).

ACML'18 = Yang, Zhong, Shen, Lin, "Optimization-inspired structure design" (ACML 2018), Table 1.
SCIS'23 = Yang, Shen, Li, Lin, "Optimization-inspired manual architecture design and neural
architecture search" (Sci China Inf Sci 2023), appendix Table A1.
Each table prints f(x) = ‖x‖²/2 − Σᵢ [Ψ(Uᵢᵀx)] (or Σᵢ φᵢ(x) with cases); the strings below are the
bracketed Ψ in SymPy syntax with Uᵢᵀx written as u, "if u > 0 ..., otherwise ..." as a Piecewise,
C the printed arbitrary constant. Do not fix them here: derive.symbolic.errata checks them.
"""

from __future__ import annotations

from dataclasses import dataclass

ACML = "ACML 2018, Table 1"
SCIS = "SCIS 2023, appendix Table A1"


@dataclass(frozen=True)
class PrintedEnergy:
    activation: str  # name in derive.symbolic.catalog
    source: str
    printed: str  # Ψ(u) as printed, SymPy syntax


PRINTED: tuple[PrintedEnergy, ...] = (
    PrintedEnergy("sigmoid", ACML, "u + log(1/(exp(u) + 1))"),
    PrintedEnergy("sigmoid", SCIS, "u + log(1/exp(u) + 1)"),
    PrintedEnergy("tanh", ACML, "u + log(1/(exp(2*u) + 1))"),
    PrintedEnergy("tanh", SCIS, "u + log(1/exp(2*u) + 1)"),
    PrintedEnergy("softplus", ACML, "C - polylog(2, -exp(u))"),
    PrintedEnergy("softplus", SCIS, "C - polylog(2, -exp(u))"),
    PrintedEnergy("softsign", ACML, "Piecewise((u - log(u + 1), u > 0), (-u - log(u - 1), True))"),
    PrintedEnergy("softsign", SCIS, "Piecewise((u - log(u + 1), u > 0), (-u - log(u - 1), True))"),
    PrintedEnergy("relu", ACML, "Piecewise((u**2/2, u > 0), (0, True))"),
    PrintedEnergy("relu", SCIS, "Piecewise((u**2/2, u > 0), (0, True))"),
    PrintedEnergy("leaky_relu", ACML, "Piecewise((u**2/2, u > 0), (alpha*u**2, True))"),
    PrintedEnergy("leaky_relu", SCIS, "Piecewise((u**2/2, u > 0), (alpha*u**2/2, True))"),
    PrintedEnergy("elu", ACML, "Piecewise((u**2/2, u > 0), (a*(exp(u) - u), True))"),
    PrintedEnergy("elu", SCIS, "Piecewise((u**2/2, u > 0), (a*(exp(u) - u), True))"),
    PrintedEnergy("swish", ACML, "u**2/2 + u*log(1/(exp(u) + 1)) - polylog(2, -1/exp(u))"),
    PrintedEnergy("swish", SCIS, "u**2/2 + u*log(1/exp(u) + 1) - polylog(2, -1/exp(u))"),
)


def printed_for(activation: str) -> list[PrintedEnergy]:
    """The printed entries for one activation (empty when the papers do not list it)."""
    return [entry for entry in PRINTED if entry.activation == activation]
