"""Search spaces: which mixed edges enter each node of a cell, derived from an algorithm's recurrence.

A DARTS cell has two inputs, c_{k−2} and c_{k−1}, and `steps` = 4 intermediate nodes; its output is
their concatenation, SCIS (14). SCIS writes the inputs as x_{−2} = c_{k−2} (DARTS input 0) and
x_{−1} = c_{k−1} (input 1); node t (0-based) is x_t, DARTS input 2 + t.

`darts` is SCIS (19) stated directly: a mixed edge from every predecessor, DARTS's own 8 operations.
Every other space is DERIVED from an algorithm's layer recurrence (the IR that `derive network`
prints), with the 9 operations of SCIS Table 3. The shape is read by the forms pass
(`derive.algorithms.forms`, which code generation reads too), never here (`space_form`):

- a one-stream bounded look-back: `lagged_form` ((C1)/(C2)) as a `LookBack`;
- several streams, or several T evaluations: `streams_form`, then `streams_lookback` writes every
  other stream in the input stream's own states by the update equations (heavy ball written with a
  velocity, v_k = z_k − z_{k−1}, gives the heavy-ball space; QHM's momentum m_k is solved from
  z_k's update). The result is an identity of the iterates from block 1 on; a cell never sees
  the stage's first block, its inputs being the previous cells;
- an all-history recurrence: `dense_shape` (one Σ_{j=0}^{k} a(k, j)·T(z_j) and the state pieces).

The edges then follow by this rule:

1. Each term becomes a mixed edge from the state it reads: T-terms (T-edges) and state terms (state
   edges) alike. A T of a combination, T(Σ_l γ_l z_{k−l}) as in Nesterov's (C2), becomes one T-edge
   per state it reads, with coefficient γ_l (exact when T is linear, T(Σγz) = ΣγT(z); T is relaxed
   into a learnable mixed operation anyway, SCIS appendix C). Terms reading the same state in the
   same role add up; a term whose coefficient is exactly 0 is no edge (the triple momentum method's
   z_{k−1} state term: αγ − β = 0 identically).
2. Bounded look-back (no history sum): every (lag, role) keeps its own edge with its fixed
   coefficient, node t reading x_{t−1−lag}. Heavy ball, z_{k+1} = T(z_k) + βz_k − βz_{k−1} (SCIS
   (10)), gives exactly SCIS (15): two edges from x_{t−1} (ō₁ the T-term, ō₂ the βz_k term) and one
   from x_{t−2} (the −βz_{k−1} term). No edge normalisation; derivation keeps every edge with its
   strongest non-zero operation (SCIS: "top-3 strongest non-zero operations" of the HB space).
3. A history sum Σ_{j=0}^{k} c(k, j)·(…) becomes one edge from EVERY predecessor. All terms reading
   the same predecessor merge into ONE edge — the history sums' T-part and state part, and a
   bounded term of the same recurrence, which is the j = k − lag entry of that sum (as
   `derive.algorithms.forms.per_source` reads it) — because the relaxed operation ō holds both
   parts (conv operations and ±identity; SCIS after (20): "identity and negative identity that are
   explicitly expressed in (C6) are omitted because they are involved in the relaxed operation ō"),
   and the coefficient varying with (k, j) is relaxed into the edge normalisation p_it = softmax over
   the edges into node t of learnable β, SCIS (20)-(21). The all-history AGD (`nesterov2`, SCIS
   (12)) gives exactly the AGD space. Derivation keeps the top-2 edges by p_edge·w_op (PC-DARTS).

Why the two shapes differ (the paper keeps x_{t−1}'s T-term and state term apart in the HB space
but merges a predecessor's terms in the AGD space): a fixed coefficient is a property of the
recurrence worth keeping, and one softmax cannot hold both T(z) and z at full weight (weights sum
to 1, so one merged edge could only give ½F(x) + ½x), so fixed-coefficient terms keep their own
edge and HB initialisation can start ō₂ at identity with ō₁ free; a coefficient that varies with the
iteration is not kept but learned, one scalar p_it per edge, which cannot tell two terms on the same
edge apart, so they merge.

A look-back that reaches before x_{−2} reads x_{−2} (the restart rule of the stages, z_{−l} = z_0).
The recurrence's output map (the triple momentum method's (1 + δ)z_K − δz_{K−1}) is not part of a
cell: the cell's output is the concatenation (14). UserError where no one-stream reading exists:
ADMM's two paths (each applies T to its own stream), extragradient (written in z's states its
second gradient is a T of a T, which no edge from one node holds), a history not of the dense shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy as sp

from derive.algorithms import get_algorithm, list_algorithms, recurrence_of
from derive.algorithms.forms import (
    DenseForm,
    LookBack,
    dense_shape,
    fits_lagged,
    lagged_form,
    lagged_lookback,
    streams_form,
    streams_lookback,
)
from derive.algorithms.ir import Recurrence, StateRef, Term
from derive.algorithms.render import (
    UnicodePrinter,
    combination_text,
    names_of,
    recurrence_lines,
)
from derive.algorithms.spec import Algorithm
from derive.algorithms.symbols import k
from derive.errors import UserError
from derive.nas.ops import OP_NAMES

DARTS_OPS: tuple[str, ...] = tuple(op for op in OP_NAMES if op != "neg_skip_connect")
"""DARTS's PRIMITIVES, in its order (no negative identity)."""

T_ROLE, STATE_ROLE, MERGED_ROLE, ANY_ROLE = "T", "state", "T+state", "mixed"
KEEP_EACH, KEEP_TOP2 = "each", "top2"
STEPS = 4
SPACE_ALIASES = {"hb": "heavyball"}
PAPER_SPACES = {"darts": "SCIS (19)", "heavyball": "SCIS (15)", "agd": "SCIS (20)-(21)"}


@dataclass(frozen=True)
class EdgeKind:
    """One kind of mixed edge into every node: its source, its role and the coefficient it carries.

    `lag` l: node t reads x_{t−1−l} (clamped to x_{−2}); None: one edge from every predecessor.
    `coefficient`: the recurrence's fixed coefficient (SymPy, in the algorithm's symbols); None where
    it varies with the iteration and is relaxed into p_it. `term` is the recurrence text it came from.
    """

    lag: int | None
    role: str
    term: str
    coefficient: sp.Expr | None = None
    value: float | None = None  # the coefficient at the algorithm's values, when it is a number
    split: bool = False  # a T-edge split off a T of a combination

    def source_text(self) -> str:
        if self.lag is None:
            return "every predecessor x_i, i < t"
        return "x_{t−1}" if self.lag == 0 else f"x_{{t−{self.lag + 1}}}"


@dataclass(frozen=True)
class CellEdge:
    """A concrete edge of a cell: into `node` (0-based) from DARTS input `source`, of kind `kind`."""

    node: int
    source: int
    kind: int  # index into SearchSpace.kinds


@dataclass(frozen=True)
class SearchSpace:
    """A cell's mixed edges, its operations, edge normalisation and the derivation keep-rule."""

    name: str
    ops: tuple[str, ...]
    kinds: tuple[EdgeKind, ...]
    normalised: bool  # p_it = softmax_i(β_it) weighs every edge into node t, SCIS (21)
    keep: str  # KEEP_EACH: every edge, its strongest non-zero op; KEEP_TOP2: top-2 edges
    equation: str  # the papers' equation or the recurrence it comes from
    algorithm: Algorithm | None = None
    recurrence_text: tuple[str, ...] = ()
    coefficients: dict[str, float] = field(default_factory=dict)  # the algorithm's values
    steps: int = STEPS
    written_out: tuple[str, ...] = ()  # the node stream, then the streams written in its states

    def cell_edges(self) -> tuple[CellEdge, ...]:
        """Every edge of a cell, node by node, in the order of `kinds` (then of the source input)."""
        edges = []
        for node in range(self.steps):
            for index, kind in enumerate(self.kinds):
                if kind.lag is None:
                    edges += [CellEdge(node, source, index) for source in range(node + 2)]
                else:
                    edges.append(CellEdge(node, max(0, node + 1 - kind.lag), index))
        return tuple(edges)

    def node_edges(self, node: int) -> list[int]:
        """Indices (into cell_edges) of the edges into `node`."""
        return [i for i, e in enumerate(self.cell_edges()) if e.node == node]

    def reads_input(self, source: int) -> bool:
        return any(e.source == source for e in self.cell_edges())

    @property
    def num_edges(self) -> int:
        return len(self.cell_edges())

    def describe(self) -> list[str]:
        """The derived cell as text lines (`derive nas search --show`)."""
        lines = [f"search space {self.name!r} — {self.equation}"]
        if self.recurrence_text:
            title = self.algorithm.title if self.algorithm else ""
            lines += ["", f"from the layer recurrence of {title}:"]
            lines += [f"    {line}" for line in self.recurrence_text]
        if self.coefficients:
            values = ", ".join(f"{n} = {_num(v)}" for n, v in self.coefficients.items())
            lines.append(f"    at {values}")
        if self.written_out:
            node, *others = self.written_out
            lines.append(
                f"    written in {node}'s own states ({', '.join(others)} substituted by the update "
                "equations; an identity of the iterates from block 1 on)"
            )
        lines += [
            "",
            f"operations ({len(self.ops)}, α columns in this order): {', '.join(self.ops)}",
        ]
        lines += [
            "",
            "edge kinds into node t (x_t, DARTS input 2 + t; inputs 0 = x₋₂ = c_{k−2}, "
            "1 = x₋₁ = c_{k−1}); every edge of a cell has its own α:",
        ]
        for index, kind in enumerate(self.kinds):
            coefficient = (
                "relaxed into p_it" if kind.coefficient is None else _coef_text(kind, self)
            )
            note = " (split off T of a combination: exact for linear T)" if kind.split else ""
            lines.append(
                f"  ō{_sub(index + 1)} ← {kind.source_text():28s} role {kind.role:8s} "
                f"from {kind.term}; coefficient {coefficient}{note}"
            )
        lines += [""]
        weight = "p·" if self.normalised else ""
        for node in range(self.steps):
            parts = []
            for i in self.node_edges(node):
                e = self.cell_edges()[i]
                parts.append(f"{weight}ō{_sub(e.kind + 1)}({_input_name(e.source)})")
            lines.append(f"  node {node} (input {node + 2}): x_{node} = " + " + ".join(parts))
        lines += [
            "",
            f"{self.num_edges} mixed edges per cell; edge normalisation (β, SCIS (21)): "
            + ("yes, p_it = softmax over the edges into node t" if self.normalised else "no"),
            "derivation: "
            + (
                "every edge keeps its strongest non-zero operation"
                if self.keep == KEEP_EACH
                else "the top-2 edges into each node by "
                + ("p_edge·w_op (PC-DARTS)" if self.normalised else "w_op (DARTS)")
                + ", each with its strongest non-zero operation"
            ),
        ]
        return lines

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name,
            "equation": self.equation,
            "algorithm": self.algorithm.name if self.algorithm else None,
            "recurrence": list(self.recurrence_text),
            "coefficients": self.coefficients,
            "ops": list(self.ops),
            "edge_kinds": [
                {
                    "source": "all" if kind.lag is None else f"lag {kind.lag}",
                    "role": kind.role,
                    "term": kind.term,
                    "coefficient": (None if kind.coefficient is None else str(kind.coefficient)),
                    "value": kind.value,
                    "split_from_combination": kind.split,
                }
                for kind in self.kinds
            ],
            "cell_edges": [[e.node, e.source, e.kind] for e in self.cell_edges()],
            "edge_normalisation": self.normalised,
            "keep": self.keep,
        }
        if self.written_out:
            data["written_in"] = self.written_out[0]
            data["written_out"] = list(self.written_out[1:])
        return data


def _sub(n: int) -> str:
    return str(n).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def _input_name(source: int) -> str:
    return ("x₋₂", "x₋₁")[source] if source < 2 else f"x{_sub(source - 2)}"


def _num(value: float) -> str:
    return f"{value:.6g}"


def _coef_text(kind: EdgeKind, space: SearchSpace) -> str:
    text = _printer_text(kind.coefficient, space.algorithm)
    if kind.value is not None and text != _num(kind.value):
        text += f" = {_num(kind.value)}"
    return text


def _printer_text(expr: sp.Expr | None, algorithm: Algorithm | None) -> str:
    if expr is None:
        return "—"
    if algorithm is None:
        return str(expr)
    return UnicodePrinter(names_of(algorithm)).doprint(expr)


DARTS_SPACE = SearchSpace(
    name="darts",
    ops=DARTS_OPS,
    kinds=(EdgeKind(None, ANY_ROLE, "o^(i,t)(x_i)"),),
    normalised=False,
    keep=KEEP_TOP2,
    equation="SCIS (19): x_t = Σ_{i<t} ō^(i,t)(x_i) (DARTS, Liu et al. 2019)",
)


def resolve_space(name: str, coefficients: dict[str, float] | None = None) -> SearchSpace:
    """`darts`, `heavyball`/`hb`, `agd` (the paper's Search space-AGD, from `nesterov2`), or any
    `derive network --algo` value (built-in name, alias, .toml spec). UserError for anything else.
    """
    # deferred: derive.codegen loads SymPy passes and the templates, needed only here
    from derive.codegen.generate import with_defaults

    key = SPACE_ALIASES.get(name, name)
    if key == "darts":
        if coefficients:
            raise UserError("--coef: the darts space has no algorithm coefficients")
        return DARTS_SPACE
    algo_name = "nesterov2" if key == "agd" else key
    try:
        algorithm = get_algorithm(algo_name)
    except UserError:
        if name.endswith(".toml"):
            raise
        raise UserError(
            f"unknown search space {name!r}: choose darts, heavyball (hb), agd, an algorithm "
            f"({', '.join(list_algorithms())}; aliases as in `derive network`) or a .toml spec"
        ) from None
    algorithm = with_defaults(algorithm, coefficients or {})
    label = key if key in PAPER_SPACES else algorithm.name
    return derive_space(label, algorithm)


def derive_space(name: str, algorithm: Algorithm) -> SearchSpace:
    """The search space the module docstring's rule gives for `algorithm`'s layer recurrence."""
    recurrence = recurrence_of(algorithm)
    form = space_form(recurrence)
    text = tuple(recurrence_lines(recurrence))
    values = recurrence.coefficient_values()
    shown = {c.name: float(sp.N(values[c.sym])) for c in recurrence.coefficients}
    if isinstance(form, DenseForm):
        role = MERGED_ROLE if form.state else T_ROLE
        return SearchSpace(
            name=name,
            ops=OP_NAMES,
            kinds=(EdgeKind(None, role, text[0].split(" = ", 1)[1]),),
            normalised=True,
            keep=KEEP_TOP2,
            equation=f"SCIS (20)-(21) from {algorithm.equation}",
            algorithm=algorithm,
            recurrence_text=text,
            coefficients=shown,
        )
    kinds = _edge_kinds(recurrence, form, values)
    if not kinds:
        raise UserError(f"{algorithm.name}: the recurrence has no term a cell edge could hold")
    return SearchSpace(
        name=name,
        ops=OP_NAMES,
        kinds=kinds,
        normalised=False,
        keep=KEEP_EACH,
        equation=(PAPER_SPACES.get(name, "derived") + f" from {algorithm.equation}"),
        algorithm=algorithm,
        recurrence_text=text,
        coefficients=shown,
        written_out=_written_out(algorithm, form),
    )


def space_form(recurrence: Recurrence) -> DenseForm | LookBack:
    """What the forms pass reads of `recurrence` that a cell can hold: the all-history terms
    (`dense_shape`), or one stream's own look-back (`lagged_form`, or `streams_form` with the other
    streams written out). UserError, naming the streams, for anything else."""
    streams = recurrence.streams
    several = (
        f"its layer recurrence has {len(streams)} streams ({', '.join(streams)}); a cell's node is "
        "one state"
    )
    try:
        if recurrence.has_history():
            return dense_shape(recurrence)
        if fits_lagged(recurrence):
            return lagged_lookback(recurrence, lagged_form(recurrence))
        return streams_lookback(recurrence, streams_form(recurrence))
    except UserError as exc:
        if len(streams) == 1:
            raise
        reason = str(exc).removeprefix(f"{recurrence.name}: ")
        raise UserError(f"{recurrence.name}: {several}, and {reason}") from None


def _edge_kinds(recurrence: Recurrence, form: LookBack, values: dict) -> tuple[EdgeKind, ...]:
    """Rules 1-2 of the module docstring: one edge kind per (lag, role), zero terms left out."""
    coefficient: dict[tuple[int, str], sp.Expr] = {}
    split: set[tuple[int, str]] = set()
    for outer, argument in form.t_terms:
        for lag, inner in argument:
            key = (lag, T_ROLE)
            coefficient[key] = coefficient.get(key, 0) + outer * inner
            if len(argument) > 1 or inner != 1:
                split.add(key)
    for lag, c in form.state_terms:
        key = (lag, STATE_ROLE)
        coefficient[key] = coefficient.get(key, 0) + c
    kinds = []
    for key in sorted(coefficient, key=lambda kr: (kr[1] != T_ROLE, kr[0])):
        lag, role = key
        expr = sp.simplify(coefficient[key])
        exact = sp.simplify(expr.subs(values))
        if exact == 0:
            continue  # a term with coefficient 0 is no term
        kinds.append(
            EdgeKind(
                lag=lag,
                role=role,
                term=_term_text(recurrence, form.stream, lag, role),
                coefficient=expr,
                value=float(exact) if exact.is_number and exact.is_real else None,
                split=key in split,
            )
        )
    return tuple(kinds)


def _written_out(algorithm: Algorithm, form: LookBack) -> tuple[str, ...]:
    """(z, zₘ, …): the node stream and the streams written in its states, as equations print them."""
    if not form.eliminated:
        return ()
    symbols = {s.z_name: s.z_symbol for s in algorithm.streams}
    return tuple(symbols.get(s, s) for s in (form.stream, *form.eliminated))


def _term_text(recurrence: Recurrence, stream: str, lag: int, role: str) -> str:
    """T(zₖ) or zₖ₋₁: the state an edge reads, as the recurrence prints it."""
    printer = UnicodePrinter(names_of(recurrence.algorithm))
    ref = StateRef(stream, k - lag)
    body = combination_text((Term(sp.Integer(1), ref),), printer)
    return f"T({body})" if role == T_ROLE else body


def coefficient_weights(c: float) -> dict[str, float]:
    """The ±identity mixture that represents c·x inside one softmax: w_skip − w_neg = c, w_skip + w_neg = 1.

    Exact for |c| ≤ 1 (w_skip = (1 + c)/2, w_neg = (1 − c)/2); UserError otherwise, since the
    softmax weights of one edge sum to 1 and no mixture of ±x exceeds |x|.
    """
    if not math.isfinite(c) or abs(c) > 1:
        raise UserError(
            f"a state coefficient {c:g} cannot be represented by one edge's softmax "
            "(w_skip − w_neg = c needs |c| ≤ 1)"
        )
    return {"skip_connect": (1 + c) / 2, "neg_skip_connect": (1 - c) / 2}


__all__ = [
    "ANY_ROLE",
    "DARTS_OPS",
    "DARTS_SPACE",
    "KEEP_EACH",
    "KEEP_TOP2",
    "MERGED_ROLE",
    "STATE_ROLE",
    "T_ROLE",
    "CellEdge",
    "EdgeKind",
    "SearchSpace",
    "coefficient_weights",
    "derive_space",
    "resolve_space",
    "space_form",
]
