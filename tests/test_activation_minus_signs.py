"""Printed formulas and numbers use one minus sign, "−" (U+2212), in `derive activation` text
output and in docs/activations.md; ASCII "-" stays only in code a user would copy (the papers'
transcriptions and commands in backticks, LaTeX), in hyphenated words and in Markdown syntax."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from symbolic_cache import cached_pipeline  # noqa: F401  (autouse: one derivation per activation)

from derive.cli import main
from derive.symbolic.printing import minus_signs

ROOT = Path(__file__).resolve().parents[1]
CODE = re.compile(r"`[^`]*`")
MATH = re.compile(r"\$[^$]*\$")


def _stray_hyphens(text: str) -> list[str]:
    """Every ASCII '-' that is not inside a word (letter-hyphen-letter), with its context."""
    found = []
    for match in re.finditer("-", text):
        k = match.start()
        before, after = text[k - 1 : k], text[k + 1 : k + 2]
        if not (before.isalpha() and after.isalpha()):
            found.append(text[max(0, k - 30) : k + 30])
    return found


@pytest.mark.parametrize("name", ["mish", "hardtanh", "leaky_relu", "swish", "softsign"])
def test_text_output_uses_the_unicode_minus(capsys, name):
    assert main(["activation", name]) == 0
    out = CODE.sub("", capsys.readouterr().out)
    assert "−" in out  # every one of these prints a negative number or a difference
    assert _stray_hyphens(out) == []


def test_the_activation_docs_use_the_unicode_minus_outside_code_and_latex():
    text = (ROOT / "docs" / "activations.md").read_text(encoding="utf-8")
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    prose = []
    for line in text.splitlines():
        if re.fullmatch(r"\|(---\|)+", line):
            continue  # a table's header separator
        line = re.sub(r"^- ", "", line)  # a list bullet
        prose.append(MATH.sub("", CODE.sub("", line)))
    assert _stray_hyphens("\n".join(prose)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("grad f - (x - U Phi(U x)) = 0", "grad f − (x − U Phi(U x)) = 0"),
        ("Phi' in [-0.112526, 1.0885]", "Phi' in [−0.112526, 1.0885]"),
        ("max error 5.3e-40", "max error 5.3e−40"),
        ("Psi continuous at x = -3", "Psi continuous at x = −3"),
        ("run derive activation --expr x", "run derive activation --expr x"),
        ("heavy-ball momentum", "heavy-ball momentum"),
    ],
)
def test_minus_signs_change_minus_signs_only(text, expected):
    assert minus_signs(text) == expected


@pytest.mark.parametrize("fmt", ["json", "latex"])
def test_machine_readable_formats_keep_the_ascii_minus(capsys, fmt):
    """JSON strings are read back with sympify and LaTeX is code: both keep '-'."""
    assert main(["activation", "hardtanh", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "−" not in out and "-1" in out
