"""docs/activations.md is generated: regenerate it in-process and compare byte for byte."""

from __future__ import annotations

from pathlib import Path

from symbolic_cache import cached_derivations

from derive.symbolic.docs import DOC_PATH, activations_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_committed_activation_docs_are_fresh():
    committed = (ROOT / DOC_PATH).read_bytes()
    with cached_derivations():  # the records other tests derived already, if any
        regenerated = activations_markdown().encode("utf-8")
    assert regenerated == committed, (
        "docs/activations.md is stale: run `derive activation --all --format markdown "
        "--out docs/activations.md` (or `derive regenerate --only activations`)"
    )
