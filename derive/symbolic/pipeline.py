"""Derive one activation end to end: Φ → Ψ → proofs (symbolic and numeric) → the papers' entries.

Public entry points: derive_activation(name, **params), derive_expression(text, name),
derive_all(**params). Each returns ActivationRecord(s); record.to_json() is the JSON contract.
"""

from __future__ import annotations

import logging
import time

import sympy as sp

from derive.limits import ACTIVATION_SECONDS_DEFAULT
from derive.symbolic import (
    catalog,
    errata,
    papers,
    pieces,
    proof_numeric,
    proof_symbolic,
    smoothness,
    symbols,
    timelimit,
)
from derive.symbolic.energy import derive_energy
from derive.symbolic.record import ActivationRecord
from derive.symbolic.user_input import parse_user_phi

log = logging.getLogger(__name__)

#: Seconds one integration strategy may run: a safety net for built-ins, a real limit for user input.
BUILTIN_LIMIT = 120.0
USER_LIMIT = 5.0


def _derive(
    name: str,
    description: str,
    phi: sp.Expr,
    values: dict[str, sp.Rational | None],
    samples: list[dict],
    *,
    activation: catalog.Activation | None,
    limit: float,
) -> ActivationRecord:
    """Ψ, both proofs and the papers' entries for Φ = `phi` (parameters `values`, None: symbolic)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    substituted = phi.subs({symbols.PARAMETERS[k]: v for k, v in values.items() if v is not None})
    branching = pieces.split(substituted, what=name)
    energy = derive_energy(substituted, branching, limit=limit)
    timings["derive"] = time.perf_counter() - start
    mark = time.perf_counter()
    symbolic = proof_symbolic.prove(substituted, energy.psi)
    timings["symbolic"] = time.perf_counter() - mark
    mark = time.perf_counter()
    numeric = proof_numeric.check(substituted, energy.psi, branching, samples)
    timings["numeric"] = time.perf_counter() - mark
    mark = time.perf_counter()
    fixed = {symbols.PARAMETERS[k]: v for k, v in values.items() if v is not None}
    checks = (
        tuple(
            errata.check_printed(entry, substituted, energy.psi, fixed, samples)
            for entry in papers.printed_for(name)
        )
        if activation is not None
        else ()
    )
    timings["papers"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - start
    log.debug(
        "timing: %s %.3f s (%s)",
        name,
        timings["total"],
        ", ".join(f"{k} {v:.3f}" for k, v in timings.items() if k != "total"),
    )
    return ActivationRecord(
        name=name,
        description=description,
        phi=substituted,
        energy=energy,
        symbolic=symbolic,
        numeric=numeric,
        paper=checks,
        parameters=values,
        activation=activation,
        timings=timings,
    )


def derive_activation(name: str, **params: object) -> ActivationRecord:
    """Φ, Ψ, energy, gradient and both proofs for a built-in activation (params: alpha, a)."""
    activation = catalog.lookup(name)
    values = catalog.parameter_values(activation, params)
    return _derive(
        activation.name,
        activation.description,
        activation.phi,
        values,
        catalog.numeric_samples(activation, values),
        activation=activation,
        limit=BUILTIN_LIMIT,
    )


def derive_expression(
    text: str, name: str = "custom", *, seconds: float | None = ACTIVATION_SECONDS_DEFAULT
) -> ActivationRecord:
    """Like derive_activation for a user's Φ(x) given as text (never evaluated as code).

    Everything runs within one wall-clock budget of `seconds` (None: none of its own): Ψ falls
    back to the numeric energy, and proof steps and the numeric proof that it stops are reported
    undecided (time limit)."""
    with timelimit.budget(seconds):
        phi = parse_user_phi(text)
        return _derive(
            name, f"user expression {text.strip()}", phi, {}, [], activation=None, limit=USER_LIMIT
        )


def derive_all(**params: object) -> list[ActivationRecord]:
    """Every built-in activation, in catalog order (params apply to those that have them)."""
    records = []
    for activation in catalog.ACTIVATIONS:
        own = {k: v for k, v in params.items() if k in {p.name for p in activation.parameters}}
        records.append(derive_activation(activation.name, **own))
    return records


def smoothness_for(
    name: str, sigma: float | None = None, **params: object
) -> smoothness.Smoothness:
    """Smoothness of the built-in activation `name` at ‖U‖₂ = sigma (default σ² = 1/(2M)).

    Needs no proof, so Ψ is not derived; symbolic parameters take their usual defaults."""
    activation = catalog.lookup(name)
    subs, label = catalog.with_defaults(activation, catalog.parameter_values(activation, params))
    m, M = smoothness.derivative_range(activation.phi.subs(subs))
    return smoothness.from_range(m, M, sigma, label)
