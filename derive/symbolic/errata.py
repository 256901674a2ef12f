"""Check the papers' printed energies with the same proofs as the derived ones, and correct them.

Verdicts distinguish the failure kinds: "derivative wrong" (Ψ′ ≠ Φ on some branch), "not real"
(Ψ complex on some branch, e.g. log of a negative number) and "discontinuous" (a real jump at a
branch point). Constants of integration never make an entry fail (only Ψ′ and jumps are checked).
Corrections are computed, then verified like everything else: failing branches are replaced by the
derived Ψ's branch, branch constants shifted for continuity (keeping the rightmost correct branch),
and a formula that is wrong everywhere is replaced by the derived Ψ up to a constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from derive.symbolic import identity, pieces, proof_numeric, proof_symbolic, screen, symbols
from derive.symbolic.expr_parser import PAPER_FUNCTIONS, parse_expression
from derive.symbolic.papers import PrintedEnergy
from derive.symbolic.proof_symbolic import CONTINUITY, DERIVATIVE, REAL, interval_text
from derive.symbolic.symbols import u, x

DERIVATIVE_WRONG, NOT_REAL, DISCONTINUOUS, UNPROVEN = (
    "derivative wrong",
    "not real",
    "discontinuous",
    "not proved",
)
_NAMES = {"u": u, "alpha": symbols.alpha, "a": symbols.a, "C": symbols.C}


@dataclass(frozen=True)
class PaperCheck:
    source: str
    printed: str
    verified: bool
    kinds: tuple[str, ...]
    note: str
    corrected: str | None  # Ψ(u), verified, where the printed one fails

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "printed": self.printed,
            "verified": self.verified,
            "note": self.note,
        }


def parse_printed(text: str) -> sp.Expr:
    """A printed formula (in u) as SymPy, read with the same safe parser as user input."""
    return parse_expression(text, _NAMES, functions=PAPER_FUNCTIONS, what="printed formula")


def in_u(expr: sp.Expr) -> str:
    return str(expr.subs(x, u))


def _relation(derivative: sp.Expr, phi_cell: sp.Expr, phi: sp.Expr, cell: pieces.Cell) -> str:
    """How a wrong Ψ′ relates to Φ on a branch: −Φ(u), Φ(−u) or k·Φ(u), when one of those holds."""
    if identity.is_zero_on(derivative + phi_cell, cell):
        return " = -Phi(u)"
    if not pieces.split(phi).is_piecewise and identity.is_zero_on(
        derivative - phi.subs(x, -x), cell
    ):
        return " = Phi(-u)"
    if phi_cell != 0:
        ratio = sp.simplify(derivative / phi_cell)
        if not ratio.has(x) and ratio != 1:
            return f" = {ratio}*Phi(u)"
    return ""


def _drop_constant(expr: sp.Expr) -> sp.Expr:
    """`expr` without its additive constant (log(eˣ/2 + 1/2) → log(eˣ + 1)), if that is no bigger."""
    split_logs = expr.replace(sp.log, lambda arg: sp.log(sp.factor_terms(arg)))
    terms = sp.Add.make_args(sp.expand_log(split_logs, force=True))
    kept = [term for term in terms if term.has(x)]
    stripped = sp.Add(*kept)
    return stripped if sp.count_ops(stripped) <= sp.count_ops(expr) else expr


def _value_at_zero(printed: sp.Expr) -> str:
    """'; Psi(0) = pi**2/12' when the printed constant differs from our normalisation Ψ(0) = 0."""
    cell = pieces.split(printed, what="printed formula").cell_at(sp.Rational(-1, 2))
    value = sp.simplify(identity.one_sided(cell.expr, sp.S.Zero, "-"))
    return "" if value == 0 else f"; Psi(0) = {in_u(value)} (derive normalises to Psi(0) = 0)"


def _complex_example(cell: pieces.Cell) -> str:
    """'Psi(-1) = 1 - log(2) - I*pi (log of a negative number)' at a point inside the cell."""
    probe = cell.interior_point()
    value = sp.expand_complex(
        sp.expand_log(cell.expr.subs(symbols.C, 0).subs(x, probe), force=True)
    )
    negative_log = any(f.args[0].subs(x, probe).is_negative for f in cell.expr.atoms(sp.log))
    why = " (log of a negative number)" if negative_log else ""
    return f"Psi({probe}) = {in_u(value)}{why}"


def _correct(
    printed: sp.Expr, cells: list[pieces.Cell], failing: set[int], derived: sp.Expr
) -> tuple[sp.Expr, str]:
    """A corrected Ψ: the printed branch where it is right, the derived one where it fails, with
    constants for continuity (the rightmost correct branch keeps its own)."""
    derived_br = pieces.split(derived)
    if len(cells) == 1 or len(failing) == len(cells):
        if derived_br.is_piecewise:
            return derived, ""
        return _drop_constant(derived), " (up to a constant)"
    exprs = [
        derived_br.cell_at(cell.interior_point()).expr if k in failing else cell.expr
        for k, cell in enumerate(cells)
    ]
    anchor = max(k for k in range(len(cells)) if k not in failing)
    for k in range(anchor + 1, len(cells)):
        point = cells[k].lo
        exprs[k] += identity.one_sided(exprs[k - 1], point, "-") - identity.one_sided(
            exprs[k], point, "+"
        )
    for k in range(anchor - 1, -1, -1):
        point = cells[k].hi
        exprs[k] += identity.one_sided(exprs[k + 1], point, "+") - identity.one_sided(
            exprs[k], point, "-"
        )
    exprs = [sp.factor_terms(sp.expand(e), sign=False) for e in exprs]
    printed_br = pieces.split(printed, what="printed formula")
    if len(cells) == len(printed_br.cells):
        return printed_br.assemble(exprs), ""
    return pieces.Branching(tuple(cells), None).assemble(exprs), ""


def check_printed(
    entry: PrintedEnergy,
    phi: sp.Expr,
    derived: sp.Expr | None,
    values: dict[sp.Symbol, sp.Expr],
    samples: Sequence[dict[sp.Symbol, sp.Expr]],
) -> PaperCheck:
    """Verify one printed Ψ against Φ (symbolic and numeric), with a note and a correction."""
    printed = parse_printed(entry.printed).subs(u, x).subs(values)
    has_constant = printed.has(symbols.C)
    symbolic = proof_symbolic.prove(phi, printed, var="u", normalised=False)
    phi_br = pieces.split(phi)
    grid = pieces.combine(phi_br, pieces.split(printed, what="printed formula"))
    numeric = proof_numeric.check(phi, printed.subs(symbols.C, 0), grid, samples)
    kinds: list[str] = []
    reasons: list[str] = []
    failing: set[int] = set()  # indices of the printed formula's failing cells (left to right)
    cells = [step.cell for step in symbolic.steps if step.kind == DERIVATIVE and step.cell]
    starts = [cell.lo for cell in cells]
    for step in symbolic.steps:
        if step.cell is None or step.kind not in (DERIVATIVE, REAL):
            continue
        cell, where = step.cell, interval_text(step.cell, "u")
        phi_cell = phi_br.cell_at(cell.interior_point())
        if step.kind == DERIVATIVE and step.ok is False:
            failing.add(starts.index(cell.lo))
            relation = _relation(step.value, phi_cell.expr, phi, cell)
            kinds.append(DERIVATIVE_WRONG)
            reasons.append(
                f"{DERIVATIVE_WRONG} on {where}: Psi'(u) = {in_u(step.value)}{relation}, "
                f"not Phi(u) = {in_u(phi_cell.expr)}"
            )
        undecided_but_complex = step.ok is None and not screen.real(
            cell.expr.subs(symbols.C, 0), cell
        )
        if step.kind == REAL and (step.ok is False or undecided_but_complex):
            failing.add(starts.index(cell.lo))
            kinds.append(NOT_REAL)
            reasons.append(f"{NOT_REAL} on {where}: {_complex_example(cell)}")
    for step in symbolic.failures(CONTINUITY):
        left, right = step.value
        if sp.simplify(sp.re(right) - sp.re(left)) != 0:
            kinds.append(DISCONTINUOUS)
            point = step.claim.rsplit(" = ", 1)[-1]
            reasons.append(
                f"{DISCONTINUOUS} at u = {point}: Psi jumps from {in_u(left)} (left) to {in_u(right)} (right)"
            )
    verified = symbolic.ok and numeric.ok
    if not kinds and not verified:
        kinds.append(UNPROVEN)
        reasons.append(
            "; ".join(s.claim for s in symbolic.failures()) or "; ".join(numeric.failures)
        )
    constant = " for any constant C" if has_constant else ""
    if verified:
        note = f"holds{constant}: Psi' = Phi on every branch, Psi real and continuous"
        return PaperCheck(
            entry.source, entry.printed, True, (), note + _value_at_zero(printed), None
        )
    corrected_text = None
    if derived is not None and not derived.has(sp.Integral):
        corrected, qualifier = _correct(printed, cells, failing, derived)
        check = proof_symbolic.prove(phi, corrected, assembled=False, normalised=False)
        if not check.ok:
            corrected, qualifier = derived, ""
        corrected_text = in_u(corrected) + qualifier
    note = "; ".join(reasons)
    if corrected_text:
        note += f"; corrected: Psi(u) = {corrected_text}"
    return PaperCheck(
        entry.source, entry.printed, False, tuple(dict.fromkeys(kinds)), note, corrected_text
    )
