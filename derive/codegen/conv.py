"""The conv (engineering) forms of SCIS appendix C, printed from the forms pass.

`derive.algorithms.forms` reads the shape of a recurrence (terms, lags, coefficients); this module
prints that shape as Python and Unicode and renders the templates:

- lagged (`conv_lagged.py.j2`): z_{k+1} = ρ(α T_k(Σ_l γ_l z_{k−l}) + Σ_l β_l z_{k−l}), (C1)/(C2);
- dense (`conv_dense.py.j2`): z_{k+1} = Σ_j α^j T(z_j) + β(z_k − Σ_j h_{k+1,j} z_j), (C3)/(C6);
- multi-stream (`conv_streams.py.j2`, printed by `derive.codegen.streams`): every other
  recurrence, any number of streams and T-terms (QHM, extragradient, heavy ball with a velocity,
  user specs with several states or several gradients), an accumulator unrolled into a history
  sum Σ_j w(k, j)·s_j whose weight vector is fixed (nonzero entries only), learnable or pruned.

ADMM's network is the multi-stream form of (13), μ unrolled, after the `c5_form` pass (SCIS (C5),
the papers' network rather than (13) relaxed term by term): both paths add the first path's
history sums, with the modules (`branch_prime`, `branch`, the weight vectors `alpha`, `beta`) the
zoo's dmrnet56 and admmnet56 were trained with.

Each module is a whole network on its own (it imports only torch and the standard library): the
block and stage of the recurrence, then T's branches and the shortcuts, the stems, heads and the
papers' initialisation, the builders (`cifar_resnet`, `cifar_densenet`, ...), `create_model`, and
one factory per zoo network the algorithm gives (derive.codegen.papers.ZOO; `hbnet56()`), or the
generic `cifar()` and `imagenet()`. The shared pieces are the templates conv_layers.j2,
conv_resnet_branches.j2, conv_network.j2, conv_resnet_builders.j2 and conv_factories.j2.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import sympy as sp

from derive.algorithms.forms import (
    C5_LABEL,
    Piece,
    StreamsForm,
    dense_form,
    engineering_form,
    fits_lagged,
    invertibility,
    lagged_form,
    state_text,
)
from derive.algorithms.ir import Recurrence
from derive.algorithms.pycode import (
    CoefficientPrinter,
    bindings,
    constants_code,
    join_signed,
    schedule_code,
    table_variables,
)
from derive.algorithms.render import UnicodePrinter, algorithm_lines, names_of, recurrence_lines
from derive.codegen.fc import class_name
from derive.codegen.papers import factories, paper_networks, zoo_networks
from derive.codegen.streams import forward_lines
from derive.codegen.templates import render


def _common_context(recurrence: Recurrence, invoked: str | None) -> dict[str, object]:
    """What every conv template reads; `invoked` is the --algo argument as typed (None: the name)."""
    algorithm = recurrence.algorithm
    family = "dense" if algorithm.engineering == "dense" else "resnet"
    schedules = schedule_code(recurrence.schedules)
    inverse = invertibility(recurrence)
    return {
        "name": algorithm.name,
        "invoked": shlex.quote(invoked) if invoked else algorithm.name,
        "title": algorithm.title,
        "reference": algorithm.reference,
        "equation": algorithm.equation,
        "z_equation": algorithm.z_equation,
        "x_lines": algorithm_lines(algorithm),
        "z_lines": recurrence_lines(recurrence),
        "special_cases": [(s.network, s.setting) for s in algorithm.special_cases],
        "coefficients": [
            {"name": c.name, "default": repr(float(sp.N(c.default, 17))), "doc": c.doc}
            for c in recurrence.coefficients
        ],
        "constants": constants_code(recurrence),
        "schedules": schedules,
        "invertibility": inverse,
        "invertibility_text": repr(inverse.summary()),
        "oldest_state": state_text(inverse.divisor.lag) if inverse.divisor else "",
        "networks": paper_networks(algorithm.name, f"{algorithm.name}_conv.py"),
        "factories": factories(algorithm.name, family),
        "zoo_factories": bool(zoo_networks(algorithm.name)),
    }


def render_lagged(recurrence: Recurrence, invoked: str | None = None) -> str:
    """Source of `ALGO_conv.py` for a lagged (C1)/(C2)-type recurrence."""
    form = lagged_form(recurrence)
    printer, text = _printers(recurrence)
    code = {c.name: printer.doprint(c.expr) for c in form.coefficients}
    texts = {c.name: text.doprint(c.expr) for c in form.coefficients}
    output_code = [(lag, printer.doprint(expr)) for lag, expr in form.output]
    used = _used_tables(recurrence, [c.expr for c in form.coefficients])
    context = _common_context(recurrence, invoked)
    printed = list(code.values()) + [e for _, e in context["constants"]]
    printed += [line for s in context["schedules"] for line in s.lines]
    return render(
        "conv_lagged.py.j2",
        **context,
        form_name="lagged",
        uses_math=any("math." in t for t in printed),
        form=form,
        code=code,
        text=texts,
        output_code=output_code,
        used_tables=used,
        class_prefix=class_name(recurrence.name, ""),
        block_bindings=bindings(recurrence, list(code.values())),
        output_bindings=bindings(recurrence, [c for _, c in output_code]),
        output_is_newest=output_code == [(0, "1")],
    )


def render_streams(recurrence: Recurrence, invoked: str | None = None) -> str:
    """Source of `ALGO_conv.py` for any other recurrence: the multi-stream form (ADMM's: (C5))."""
    form = engineering_form(recurrence)
    assert isinstance(form, StreamsForm)
    printer, text = _printers(recurrence)
    code = {c.name: printer.doprint(c.expr) for c in form.coefficients}
    code.update(
        {c.name: _unwrapped(code[c.name]) for c in form.coefficients if c.role == "history"}
    )
    texts = {c.name: coefficient_text(c.expr, text) for c in form.coefficients}
    output_code = [printer.doprint(c) for _, _, c in form.output]
    readout = recurrence.input_stream
    context = _common_context(recurrence, invoked)
    printed = list(code.values()) + output_code + [e for _, e in context["constants"]]
    printed += [line for s in context["schedules"] for line in s.lines]
    return render(
        "conv_streams.py.j2",
        **context,
        form_name="streams",
        uses_math=any("math." in t for t in printed),
        form=form,
        code=code,
        text=texts,
        roles=stream_roles(form),
        equations=form.equations(),
        cost=t_cost(form),
        restart=restart_rule(form, readout),
        readout=readout,
        readout_note=readout_note(recurrence, form, readout),
        c5_note=C5_NOTE if form.label == C5_LABEL else "",
        forward_lines=forward_lines(form, readout),
        output_code=output_code,
        used_tables=_used_tables(recurrence, [c.expr for c in form.coefficients]),
        class_prefix=class_name(recurrence.name, ""),
        block_bindings=bindings(recurrence, list(code.values())),
        output_bindings=bindings(recurrence, output_code),
        output_is_newest=[(s, lag, str(c)) for s, lag, c in form.output] == [(readout, 0, "1")],
    )


def _unwrapped(code: str) -> str:
    """`code` without parentheses around the whole of it (`float(...)` encloses it)."""
    depth = 0
    for i, char in enumerate(code):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and i < len(code) - 1:
            return code
    return code[1:-1] if code.startswith("(") else code


def stream_roles(form: StreamsForm) -> dict[str, str]:
    """COEFFICIENTS' text: what each coefficient multiplies, in which update or inside which T."""
    symbols = form.symbols()
    roles = {}
    for branch in form.branches:
        if not branch.identity:
            for w in branch.argument:
                roles[w.coefficient.name] = f"{w.source.text(symbols)} inside {branch.symbol}"
    updated: dict[str, list[str]] = {}  # a shared coefficient: every update it is in
    for stream, terms in form.updates:
        for w in terms:
            if w.coefficient is not None:
                updated.setdefault(w.coefficient.name, []).append(stream)
                where = " and ".join(f"{symbols.get(s, s)}ₖ₊₁" for s in updated[w.coefficient.name])
                roles[w.coefficient.name] = f"{w.source.text(symbols)} in {where}"
    return roles


C5_NOTE = (
    "SCIS appendix C's (C5) for ADMM, the papers' network: not (13) relaxed term by term, but both "
    "paths adding the first (z′) path's history sums, its zₖ term folded in at j = k (the ½ in "
    "front of T absorbed by the learnable T). Both streams restart at the stage input, z′₀ = z₀ = "
    "S(stage input), and both T of the first block read the stage input itself. The stage returns (z′_K + z_K)/2: the two paths "
    "converge to the same point (the constraint x = y of the splitting), and merging them, as "
    "DMRNet does, puts every block to use (returning z_K alone would leave the last T′ of each "
    "stage dead). `dmrnet_coefficients` gives DMRNet's weights."
)


def coefficient_text(expr: sp.Expr, printer: UnicodePrinter) -> str:
    """A coefficient in Unicode; a history weight w(k, j) as c·[condition on j] terms."""
    pieces = []
    for term in sp.Add.make_args(sp.sympify(expr)):
        if isinstance(term, sp.Piecewise) and len(term.args) == 2 and term.args[1] == (0, True):
            pieces.append(term.args[0])
        else:
            pieces.append((term, None))
    if all(condition is None for _, condition in pieces):
        return printer.doprint(expr)
    return _pieces_text(tuple(pieces), printer)


SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def t_cost(form: StreamsForm) -> str:
    """What a block costs in T evaluations, and which T-terms reuse an earlier block's output."""
    n = form.t_evaluations()
    times = "once" if n == 1 else f"{n} times"
    text = f"A block evaluates T {times} ({', '.join(b.symbol for b in form.branches)})."
    reused = sorted(
        {
            (w.source.name, w.source.lag)
            for _, terms in form.updates
            for w in terms
            if w.source.kind == "t" and w.source.lag
        }
    )
    symbols = form.symbols()
    for name, back in reused:
        text += (
            f" {symbols[name]}ₖ₋{str(back).translate(SUBSCRIPTS)} is the output of branch {symbols[name]} of block k − {back},"
            " kept from that block, not a new evaluation."
        )
    return text


def restart_rule(form: StreamsForm, readout: str) -> str:
    """How every stream restarts at a stage's first block, in words."""
    symbols = form.symbols()
    starts = [
        f"{symbols.get(s.name, s.name)}₀ = {'z₀' if s.start == 'input' else '0'}"
        for s in form.streams
        if s.name != readout and (symbols.get(s.name, s.name), s.start) != ("z", "input")
    ]
    others = f"; the other streams start as the algorithm starts them, {', '.join(starts)}"
    text = (
        f"its input mapped by the shortcut S to the new resolution is z₀ (x₀ = Uz₀)"
        f"{others if starts else ''}; every earlier state of a stream equals its value at k = 0 "
        "(x₋₁ = x₀)."
    )
    if any(b.reads_input for b in form.branches):
        text += (
            " A branch whose argument reads only such states reads the stage input itself at the "
            "first block (its first convolution carries the stride)."
        )
    if any(not b.reads_input for b in form.branches):
        text += (
            " A branch that reads this block's new states or another T's output works at the "
            "stage's resolution from the first block on."
        )
    if form.history_streams():
        text += (
            " A history sum Σⱼ runs over j = 0 … k, every state of its stream since the stage's "
            "start."
        )
    if any(b.cached for b in form.branches):
        text += (
            " A T output of a block before the first is the first block's own (the gradient at "
            "x₋₁ = x₀ is the gradient at x₀)."
        )
    return text


def readout_note(recurrence: Recurrence, form: StreamsForm, readout: str) -> str:
    """Where the stage's output and ρ come from when there are several streams."""
    if len(recurrence.updates) == 1:
        return ""
    if form.activated:
        symbols = form.symbols()
        shown = ", ".join(f"{symbols.get(s, s)}ₖ₊₁" for s in form.activated)
        return (
            f"ρ, the optional activation after the sum (ReLU in the ResNet family), follows the "
            f"update of each of {shown}."
        )
    return (
        f"The stage reads out {readout}, the stream the network input starts (the algorithm's "
        f"first state); ρ, the optional activation after the sum (ReLU in the ResNet family), "
        f"follows the update of {readout} only, the other streams stay linear as derived."
    )


def _used_tables(recurrence: Recurrence, exprs: list[sp.Expr]) -> list[tuple[str, str]]:
    """(name, variable) of the schedule tables `exprs` read."""
    names = {
        a.func.__name__ for e in exprs for a in sp.sympify(e).atoms(sp.core.function.AppliedUndef)
    }
    return [(s.name, s.variable) for s in recurrence.schedules if s.name in names]


def render_conv(recurrence: Recurrence, invoked: str | None = None) -> str:
    """Source of `ALGO_conv.py`: the engineering form the algorithm's recurrence calls for.

    `invoked` is the --algo argument as typed (a spec's path), shown in the Generated-by line."""
    engineering = recurrence.algorithm.engineering
    if engineering == "dense":
        return render_dense(recurrence, invoked)
    if engineering != "c5" and fits_lagged(recurrence):
        return render_lagged(recurrence, invoked)
    return render_streams(recurrence, invoked)


@dataclass(frozen=True)
class HistoryForm:
    """Per-source coefficients over the whole history, as Python list comprehensions over j."""

    alpha: str  # the coefficient of T(z_j), for j = 0 … k
    state: str  # the coefficient of z_j, for j = 0 … k
    alpha_text: str
    state_text: str


def _pieces_code(pieces: tuple[Piece, ...], printer: CoefficientPrinter) -> str:
    parts = []
    for coefficient, condition in pieces:
        c = printer.doprint(coefficient)
        parts.append(c if condition is None else f"({c} if {printer.doprint(condition)} else 0)")
    if len(parts) == 1 and parts[0].startswith("(") and parts[0].endswith(" else 0)"):
        return parts[0][1:-1]
    return join_signed(parts) if parts else "0"


def _pieces_text(pieces: tuple[Piece, ...], printer: UnicodePrinter) -> str:
    parts = []
    for coefficient, condition in pieces:
        c = printer.doprint(coefficient)
        if condition is not None:
            cond = (
                printer.doprint(condition).replace("Eq(j, ", "j = ").rstrip(")")
                if isinstance(condition, sp.Eq)
                else printer.doprint(condition)
            )
            c = f"{c}·[{cond}]" if c not in ("1",) else f"[{cond}]"
        parts.append(c)
    return " + ".join(parts).replace("+ -", "− ") if parts else "0"


def _printers(recurrence: Recurrence) -> tuple[CoefficientPrinter, UnicodePrinter]:
    return (
        CoefficientPrinter(table_variables(recurrence.schedules)),
        UnicodePrinter(names_of(recurrence.algorithm)),
    )


def printed_dense(recurrence: Recurrence) -> HistoryForm:
    """(C3)/(C6) of `dense_form`, printed as Python and Unicode."""
    form = dense_form(recurrence)
    printer, text = _printers(recurrence)
    return HistoryForm(
        printer.doprint(form.alpha),
        _pieces_code(form.state, printer),
        text.doprint(form.alpha),
        _pieces_text(form.state, text),
    )


def render_dense(recurrence: Recurrence, invoked: str | None = None) -> str:
    """Source of `ALGO_conv.py` for an all-history recurrence: the dense form (C3)/(C6)."""
    return _render_history("conv_dense.py.j2", recurrence, printed_dense(recurrence), invoked)


def _render_history(
    template: str, recurrence: Recurrence, form: HistoryForm, invoked: str | None
) -> str:
    context = _common_context(recurrence, invoked)
    printed = [form.alpha, form.state] + [line for s in context["schedules"] for line in s.lines]
    return render(
        template,
        **context,
        form=form,
        form_name=recurrence.algorithm.engineering,
        uses_math=any("math." in t for t in printed),
        used_tables=_used_tables(recurrence, _atoms_of(recurrence)),
        class_prefix=class_name(recurrence.name, ""),
    )


def _atoms_of(recurrence: Recurrence) -> list[sp.Expr]:
    return [t.coefficient for u in recurrence.updates for t in u.terms]


__all__ = ["HistoryForm", "coefficient_text", "printed_dense", "render_conv"]
