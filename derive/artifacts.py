"""Everything `derive regenerate` writes: generated/ code and the generated docs, as {path: text}.

The freshness tests compute the same texts in-process and compare them with the committed files,
so the repository never carries stale generated output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from derive.algorithms import list_algorithms
from derive.algorithms.docs import algorithms_markdown
from derive.codegen.generate import generate
from derive.errors import UserError
from derive.experiments.claims import DOC, build_markdown
from derive.symbolic.docs import activations_markdown

FORMS = ("fc", "conv")


def generated_code() -> dict[str, str]:
    """{'generated/heavyball_fc.py': source, ...} for every built-in algorithm and form."""

    out = {}
    for name in list_algorithms():
        for form in FORMS:
            generated = generate(name, form)
            out[f"generated/{generated.filename}"] = generated.source
    return out


def algorithm_docs() -> dict[str, str]:
    return {"docs/algorithms.md": algorithms_markdown()}


def activation_docs() -> dict[str, str]:
    return {"docs/activations.md": activations_markdown()}


def claims_doc() -> dict[str, str]:
    """docs/results/claims.md, from the committed results and the docs above (so it runs last)."""

    return {DOC: build_markdown()}


GROUPS: dict[str, Callable[[], dict[str, str]]] = {
    "code": generated_code,
    "algorithms": algorithm_docs,
    "activations": activation_docs,
    "claims": claims_doc,
}


def repository_root() -> Path:
    """The source checkout this module runs from (regenerate writes into a checkout, not site-packages)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file() or not (root / "generated").is_dir():
        raise UserError(
            "derive regenerate runs from a source checkout (pyproject.toml and generated/ not found)"
        )
    return root
