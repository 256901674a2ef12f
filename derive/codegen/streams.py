"""The multi-stream conv form printed as Python: the block's forward pass, line by line.

`derive.algorithms.forms.streams_form` reads the shape (streams, T branches, which earlier T
outputs are reused, every coefficient); this module prints it for `templates/conv_streams.py.j2`.
The block computes each T branch once, just before the first update that reads it, and the
updates in the algorithm's order, so an update may read streams updated before it in the block.
Consecutive updates with no T evaluation or activation between them are printed as one `_updates`
call, which with fixed coefficients is one autograd node: its backward pass forms every gradient
in one pass over memory a term, accumulating in place. An update with history terms (Σ_j w_j·s_j
over every state of s so far) is one `_combine` of its other terms and the history sum, each
distinct sum (the same weights of the same streams) formed once per block (`_history_sum`).
"""

from __future__ import annotations

import re

from derive.algorithms.forms import Branch, Source, StreamsForm, WeightedSource


def state_variable(source: Source) -> str:
    """The local variable holding a state: new_z (this block's k + 1), past_z[l] (k − l)."""
    if source.lag == -1:
        return f"new_{source.name}"
    return f"past_{source.name}[{source.lag}]"


def branch_variable(index: int) -> str:
    """t1, t2, …: this block's output of branch `index`."""
    return f"t{index + 1}"


def coefficient_variable(w: WeightedSource) -> str:
    """self.c for a relaxed coefficient, 1.0 for a coefficient absorbed by T."""
    return "1.0" if w.coefficient is None else f"self.{w.coefficient.name}"


def _pairs(terms: tuple[WeightedSource, ...], operands: list[str]) -> str:
    """`(self.c, x), (self.d, y)` for _combine."""
    return ", ".join(
        f"({coefficient_variable(w)}, {operand})"
        for w, operand in zip(terms, operands, strict=True)
    )


def _tuple(items: list[str]) -> str:
    """A Python tuple display: `(a,)` or `(a, b)`."""
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


class _Body:
    """The lines of Block.forward, each T branch computed once, before its first use."""

    def __init__(self, form: StreamsForm) -> None:
        self.form = form
        self.starts = {s.name: s.start for s in form.streams}
        self.index = {b.name: i for i, b in enumerate(form.branches)}
        self.lines = ["first = stage_input is not None"]
        self.lines += [f'past_{s.name} = states["{s.name}"]' for s in form.streams]
        self.done: set[str] = set()
        self.pending: list[tuple[str, tuple[WeightedSource, ...], list[str]]] = []
        self.sums: dict[tuple[tuple[str, str], ...], str] = {}  # history terms → h1, h2, …

    def update(self, stream: str, terms: tuple[WeightedSource, ...]) -> None:
        """Queue the update of `stream`, printed with its neighbours by `flush`; an update with
        history terms is printed at once, after the queue."""
        summed = tuple(w for w in terms if w.source.kind == "history")
        terms = tuple(w for w in terms if w.source.kind != "history")
        operands = [self.operand(w.source) for w in terms]
        if not summed:
            self.pending.append((stream, terms, operands))
            return
        self.flush()
        pairs = [_pairs(terms, operands)] if terms else []
        pairs.append("*" + self.summed_variable(summed))
        self.lines.append(f"new_{stream} = _combine({', '.join(pairs)})")

    def summed_variable(self, summed: tuple[WeightedSource, ...]) -> str:
        """The variable holding Σ w·s over these history terms, printing it at first use."""
        key = tuple((w.coefficient.name, w.source.name) for w in summed if w.coefficient)
        if key not in self.sums:
            self.sums[key] = f"h{len(self.sums) + 1}"
            weighted = ", ".join(f"self.{c}.pairs(past_{s})" for c, s in key)
            self.lines.append(f"{self.sums[key]} = _history_sum({weighted})")
        return self.sums[key]

    def flush(self) -> None:
        """Print the queued updates as one `_updates` call (its sources, then one line each)."""
        if not self.pending:
            return
        made = [f"new_{stream}" for stream, _, _ in self.pending]
        sources: list[str] = []
        for _, _, operands in self.pending:
            sources += [o for o in operands if o not in made and o not in sources]
        index = {o: i for i, o in enumerate(sources + made)}
        self.lines.append(f"{_tuple(made) if len(made) == 1 else ', '.join(made)} = _updates(")
        self.lines.append(f"    {_tuple(sources)},")
        for _, terms, operands in self.pending:
            pairs = [
                f"({coefficient_variable(w)}, {index[o]})"
                for w, o in zip(terms, operands, strict=True)
            ]
            self.lines.append(f"    {_tuple(pairs)},")
        self.lines.append(")")
        self.pending = []

    def operand(self, source: Source) -> str:
        """The expression for a state or a T output, computing its branch first if needed."""
        if source.kind == "state":
            return state_variable(source)
        b = self.index[source.name]
        if source.name not in self.done:
            self.branch(b, self.form.branches[b])
            self.done.add(source.name)
        own = branch_variable(b)
        if source.lag == 0:
            return own
        return f'_earlier(cached["{source.name}"], {source.lag}, {own})'

    def branch(self, index: int, branch: Branch) -> None:
        """Compute branch `index` (at k = 0 from the stage input when it reads it)."""
        self.flush()  # the branch may read a queued update's stream
        out, call = branch_variable(index), f"self.{branch.name}"
        later = [self.operand(w.source) for w in branch.argument]
        if branch.identity:
            if branch.reads_input:
                self.lines.append(f"{out} = {call}(stage_input if first else {later[0]})")
            else:
                self.lines.append(f"{out} = {call}({later[0]})")
            return
        if not branch.reads_input:
            self.lines.append(f"{out} = {call}(_combine({_pairs(branch.argument, later)}))")
            return
        at_input = tuple(w for w in branch.argument if self.starts[w.source.name] == "input")
        first = _pairs(at_input, ["stage_input"] * len(at_input))
        self.lines += [
            "if first:  # every state T reads is z_0 (or 0) here; T reads the stage input instead",
            f"    argument = _combine({first})",
            "else:",
            f"    argument = _combine({_pairs(branch.argument, later)})",
            f"{out} = {call}(argument)",
        ]


def forward_lines(form: StreamsForm, readout: str) -> list[str]:
    """The body of Block.forward: branches, then each stream's update, then what it returns."""
    body = _Body(form)
    activated = form.activated or (readout,)
    for stream, terms in form.updates:
        body.update(stream, terms)
        if stream in activated:
            body.flush()
            body.lines += [
                "if self.post_activation is not None:",
                f"    new_{stream} = self.post_activation(new_{stream})",
            ]
    body.flush()
    new = ", ".join(f'"{s}": new_{s}' for s, _ in form.updates)
    kept = ", ".join(
        f'"{b.name}": {branch_variable(i)}' for i, b in enumerate(form.branches) if b.cached
    )
    body.lines.append(f"return {{{new}}}, {{{kept}}}")
    return _without_unread_states(body.lines, [s.name for s in form.streams])


def _without_unread_states(lines: list[str], streams: list[str]) -> list[str]:
    """Drop `past_s = states["s"]` for a stream whose earlier states no line reads."""
    definitions = {f'past_{s} = states["{s}"]' for s in streams}
    unread = {
        s
        for s in streams
        if not any(re.search(rf"\bpast_{s}\b", line) for line in lines if line not in definitions)
    }
    return [line for line in lines if line.split(" = ")[0] not in {f"past_{s}" for s in unread}]


__all__ = ["branch_variable", "coefficient_variable", "forward_lines", "state_variable"]
