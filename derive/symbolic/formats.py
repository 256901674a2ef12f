"""Render activation records as text (Unicode), LaTeX, JSON or Markdown."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import sympy as sp

from derive.symbolic.printing import latex, latex_for_table, minus_signs, unicode
from derive.symbolic.proof_numeric import NumericProof
from derive.symbolic.proof_symbolic import Step, SymbolicProof
from derive.symbolic.record import ActivationRecord
from derive.symbolic.smoothness import Smoothness
from derive.symbolic.timelimit import TIME_LIMIT

FORMATS = ("text", "latex", "json", "markdown")
NORMALISATION = "the constant of integration is chosen so that Psi(0) = 0"

_WORDS = (
    ("grad sum_i Psi(U_i^T x)", "∇ Σᵢ Ψ(Uᵢᵀx)"),
    ("Psi'(U^T x)", "Ψ′(Uᵀx)"),
    ("U_i^T x", "Uᵢᵀx"),
    ("U^T x", "Uᵀx"),
    ("grad f", "∇f"),
    ("Psi'", "Ψ′"),
    ("Psi", "Ψ"),
    ("Phi'", "Φ′"),
    ("Phi", "Φ"),
    ("sigma^2", "σ²"),
    ("sigma", "σ"),
    ("||U||_2", "‖U‖₂"),
    ("kappa", "κ"),
    ("mu =", "μ ="),
    ("3x3", "3×3"),
    ("2x2", "2×2"),
    ("Li2", "Li₂"),
    ("<=", "≤"),
    (">=", "≥"),
    (" in [", " ∈ ["),
)


_INFINITY = re.compile(r"(?<!\w)oo\b")


def pretty(text: str) -> str:
    """ASCII claims and notes with Greek letters and symbols, for text and Markdown output; every
    minus sign is "−" (printing.minus_signs)."""
    for ascii_text, nice in _WORDS:
        text = text.replace(ascii_text, nice)
    return minus_signs(_INFINITY.sub("∞", text))


def _error(value: float) -> str:
    return f"{value:.1e}" if value < float("inf") else "inf"


def psi_how(record: ActivationRecord) -> str:
    if not record.energy.closed_form:
        why = (
            "the time limit ended the search for a closed form"
            if record.energy.timed_out
            else "no closed form found"
        )
        return f"numeric ({why}): Psi(x) = integral of Phi from 0 to x, by mpmath quadrature"
    return f"closed form, by {record.energy.method}; {NORMALISATION}"


def _timed_out(step: Step) -> bool:
    return step.ok is None and step.detail == TIME_LIMIT


def symbolic_summary(proof: SymbolicProof) -> str:
    stopped = sum(_timed_out(step) for step in proof.steps)
    status = "FAILED" if not proof.ok else TIME_LIMIT if stopped else "passed"
    undecided = sum(step.ok is None for step in proof.steps) - stopped
    proved = sum(step.ok is True for step in proof.steps)
    extra = f", {undecided} left to the numeric proof" if undecided else ""
    extra += f", {stopped} not finished within the time limit" if stopped else ""
    return f"{status} ({proved} of {len(proof.steps)} steps proved{extra})"


def numeric_summary(proof: NumericProof) -> str:
    status = "passed" if proof.ok else TIME_LIMIT if _undecided(proof) else "FAILED"
    samples = f"; parameters {'; '.join(proof.samples)}" if proof.samples else ""
    return (
        f"{status}, max error {_error(proof.max_error)} ({proof.dps} digits, {proof.points} points for Psi' = Phi, "
        f"{proof.gradient_points} for grad f with a random SPD 3x3 U{samples})"
    )


def _undecided(proof: NumericProof) -> bool:
    """Stopped by the time limit before any check failed."""
    return proof.timed_out and not proof.failures and proof.real and proof.continuous


def _parameter_text(record: ActivationRecord) -> str:
    parts = [
        f"{k} = {v}" if v is not None else f"{k} symbolic (positive)"
        for k, v in record.parameters.items()
    ]
    return f" [{', '.join(parts)}]" if parts else ""


def _title(record: ActivationRecord) -> str:
    alias = f" (alias {', '.join(record.aliases)})" if record.aliases else ""
    return minus_signs(f"{record.name}{alias}{_parameter_text(record)}: {record.description}")


# --- text -----------------------------------------------------------------------------------


def _mark(ok: bool | None) -> str:
    return {True: "✓", False: "✗", None: "?"}[ok]


def text_one(record: ActivationRecord, smooth: Smoothness | None) -> str:
    lines = [
        _title(record),
        f"  Φ(x)  = {unicode(record.phi)}",
        f"  Ψ(x)  = {unicode(record.psi)}",
        f"          {pretty(psi_how(record))}",
        "  f(x)  = ‖x‖²/2 − Σᵢ Ψ(Uᵢᵀx)",
        "  ∇f(x) = x − U Φ(Uᵀx)    (= x − U Φ(U x) for symmetric U)",
        f"  symbolic proof: {symbolic_summary(record.symbolic)}",
    ]
    for step in record.symbolic.steps:
        detail = f"  [{pretty(step.detail)}]" if step.detail else ""
        undecided = (
            "  (SymPy cannot decide; checked numerically)"
            if step.ok is None and not _timed_out(step)
            else ""
        )
        lines.append(f"    {_mark(step.ok)} {pretty(step.claim)}{detail}{undecided}")
    lines.append(f"  numeric proof: {pretty(numeric_summary(record.numeric))}")
    lines += [f"    ✗ {pretty(failure)}" for failure in record.numeric.failures]
    lines.append(f"  verified: {'yes' if record.verified else 'NO'}")
    if smooth is not None:
        lines.append(f"  smoothness: {pretty(smooth.line())}")
    if record.paper:
        lines.append("  papers:")
        for check in record.paper:
            lines.append(f"    {_mark(check.verified)} {check.source}: Ψ(u) = `{check.printed}`")
            lines.append(f"        {pretty(check.note)}")
    return "\n".join(lines)


def render_text(records: Sequence[ActivationRecord], smooth: Sequence[Smoothness | None]) -> str:
    return "\n\n".join(text_one(r, s) for r, s in zip(records, smooth, strict=True)) + "\n"


# --- LaTeX ----------------------------------------------------------------------------------


def latex_one(record: ActivationRecord) -> str:
    status = "verified (symbolic and numeric proofs pass)" if record.verified else "NOT verified"
    psi = latex(record.psi)
    if not record.energy.closed_form:
        psi += r" \quad \text{(numeric: no closed form found)}"
    lines = [
        f"% {record.name}{_parameter_text(record)}: {status}; numeric max error {_error(record.numeric.max_error)}",
        r"\begin{align*}",
        rf"\Phi(x) &= {latex(record.phi)} \\",
        rf"\Psi(x) &= {psi} \\",
        r"f(\mathbf{x}) &= \frac{\lVert \mathbf{x} \rVert^2}{2} - \sum_i \Psi(\mathbf{U}_i^T \mathbf{x}) \\",
        r"\nabla f(\mathbf{x}) &= \mathbf{x} - \mathbf{U}\,\Phi(\mathbf{U}^T \mathbf{x})",
        r"\end{align*}",
    ]
    for check in record.paper:
        verdict = "holds" if check.verified else "fails"
        lines.append(f"% {check.source}: printed {check.printed} -- {verdict}: {check.note}")
    return "\n".join(lines)


def render_latex(records: Sequence[ActivationRecord]) -> str:
    return "\n\n".join(latex_one(r) for r in records) + "\n"


# --- JSON -----------------------------------------------------------------------------------


def render_json(records: Sequence[ActivationRecord], as_list: bool) -> str:
    data = [r.to_json() for r in records] if as_list else records[0].to_json()
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# --- Markdown -------------------------------------------------------------------------------


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def math_cell(expr: sp.Basic) -> str:
    return f"${latex_for_table(expr)}$"


def paper_verdict(check) -> str:
    return "holds" if check.verified else ", ".join(check.kinds)


def markdown_one(record: ActivationRecord, smooth: Smoothness | None) -> str:
    rows = [
        ("Φ(x)", math_cell(record.phi)),
        ("Ψ(x)", math_cell(record.psi)),
        ("how", cell(pretty(psi_how(record)))),
        (
            "energy",
            r"$f(\mathbf{x}) = \tfrac12\lVert \mathbf{x}\rVert^2 - \sum_i \Psi(\mathbf{U}_i^T \mathbf{x})$",
        ),
        (
            "gradient",
            r"$\nabla f(\mathbf{x}) = \mathbf{x} - \mathbf{U}\,\Phi(\mathbf{U}^T \mathbf{x})$",
        ),
        ("symbolic proof", cell(pretty(symbolic_summary(record.symbolic)))),
        ("numeric proof", cell(pretty(numeric_summary(record.numeric)))),
        ("verified", "yes" if record.verified else "**no**"),
    ]
    if smooth is not None:
        rows.append(("smoothness", cell(pretty(smooth.line()))))
    lines = [
        f"## {record.name}{_parameter_text(record)}",
        "",
        f"{record.description}",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in rows]
    lines += ["", "Proof steps:", ""]
    for step in record.symbolic.steps:
        detail = f" ({pretty(step.detail)})" if step.detail else ""
        lines.append(f"- {_mark(step.ok)} {pretty(step.claim)}{detail}")
    if record.paper:
        lines += ["", "| source | printed Ψ(u) | verdict | note |", "|---|---|---|---|"]
        for check in record.paper:
            lines.append(
                f"| {check.source} | `{check.printed}` | {paper_verdict(check)} | {cell(pretty(check.note))} |"
            )
    return "\n".join(lines)


def render_markdown(
    records: Sequence[ActivationRecord], smooth: Sequence[Smoothness | None]
) -> str:
    return "\n\n".join(markdown_one(r, s) for r, s in zip(records, smooth, strict=True)) + "\n"


def render(records: Sequence[ActivationRecord], fmt: str, *, as_list: bool = False) -> str:
    """One output document for `records` in format `fmt` (text, latex, json, markdown)."""
    if fmt == "json":
        return render_json(records, as_list)
    if fmt == "latex":
        return render_latex(records)
    smooth = [r.smoothness() for r in records]
    return render_text(records, smooth) if fmt == "text" else render_markdown(records, smooth)
