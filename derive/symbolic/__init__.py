"""The symbolic core: from an activation Φ to its energy Ψ, f and ∇f, with proofs.

Public API (import from here):
    derive_activation(name, **params) -> ActivationRecord   params: alpha=..., a=... (decimal text or exact)
    derive_expression(text, name="custom") -> ActivationRecord   a user's Φ(x), parsed safely
    derive_all(**params) -> list[ActivationRecord]
    smoothness_for(name, sigma=None, **params) -> Smoothness     Hessian bounds, κ, momenta
    activations_markdown() -> str                                the text of docs/activations.md
    render(records, fmt, as_list=False) -> str                   text | latex | json | markdown
    names() -> list[str]                                         built-in activation names
ActivationRecord: .phi, .psi (SymPy), .verified, .symbolic, .numeric, .paper, .to_json(),
.smoothness(sigma=None), .timings (seconds per phase).
"""

from __future__ import annotations

from derive.symbolic.catalog import names
from derive.symbolic.docs import activations_markdown
from derive.symbolic.formats import FORMATS, render
from derive.symbolic.pipeline import (
    derive_activation,
    derive_all,
    derive_expression,
    smoothness_for,
)
from derive.symbolic.record import ActivationRecord
from derive.symbolic.smoothness import Smoothness

__all__ = [
    "FORMATS",
    "ActivationRecord",
    "Smoothness",
    "activations_markdown",
    "derive_activation",
    "derive_all",
    "derive_expression",
    "names",
    "render",
    "smoothness_for",
]
