"""ActivationRecord: everything derived and proved for one activation, and its JSON record (the
stable machine-readable output of `derive activation --format json`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.symbolic import catalog, smoothness
from derive.symbolic.energy import Energy
from derive.symbolic.errata import PaperCheck
from derive.symbolic.proof_numeric import NumericProof
from derive.symbolic.proof_symbolic import SymbolicProof
from derive.symbolic.symbols import s, x
from derive.symbolic.timelimit import TIME_LIMIT

JSON_KEYS = ("name", "phi", "psi", "energy", "gradient", "verified", "numeric_max_error", "paper")


@dataclass
class ActivationRecord:
    """Φ, Ψ, both proofs and the papers' entries for one activation."""

    name: str
    description: str
    phi: sp.Expr  # with given parameter values substituted; symbolic ones stay symbols
    energy: Energy
    symbolic: SymbolicProof
    numeric: NumericProof
    paper: tuple[PaperCheck, ...]
    parameters: dict[str, sp.Rational | None]  # None: kept symbolic
    activation: catalog.Activation | None = None  # None for a user expression
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    @property
    def psi(self) -> sp.Expr:
        return self.energy.psi

    @property
    def aliases(self) -> tuple[str, ...]:
        return self.activation.aliases if self.activation else ()

    @property
    def verified(self) -> bool:
        """True only when both the symbolic and the numeric proof pass."""
        return self.symbolic.ok and self.numeric.ok

    @property
    def timed_out(self) -> bool:
        """Some analysis was stopped by the time budget (reported as undecided (time limit))."""
        stopped = any(step.ok is None and step.detail == TIME_LIMIT for step in self.symbolic.steps)
        return stopped or self.numeric.timed_out or self.energy.timed_out

    @property
    def energy_text(self) -> str:
        return f"f(x) = ||x||^2/2 - sum_i Psi(U_i^T x), Psi(s) = {self.psi.subs(x, s)}"

    @property
    def gradient_text(self) -> str:
        return f"grad f(x) = x - U Phi(U^T x), Phi(s) = {self.phi.subs(x, s)}"

    def to_json(self) -> dict:
        """The JSON object of `--format json`: exactly JSON_KEYS."""
        error = self.numeric.max_error
        return {
            "name": self.name,
            "phi": str(self.phi),
            "psi": str(self.psi),
            "energy": self.energy_text,
            "gradient": self.gradient_text,
            "verified": self.verified,
            "numeric_max_error": error if error < float("inf") else 1e308,
            "paper": [check.to_json() for check in self.paper],
        }

    def smoothness(self, sigma: float | None = None) -> smoothness.Smoothness:
        """Hessian bounds, κ and momenta; symbolic parameters take their usual defaults here."""
        subs, label = catalog.with_defaults(self.activation, self.parameters)
        m, M = smoothness.derivative_range(self.phi.subs(subs))
        return smoothness.from_range(m, M, sigma, label)
