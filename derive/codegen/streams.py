"""The multi-stream conv form printed as Python: the block's forward pass, line by line.

`derive.algorithms.forms.streams_form` reads the shape (streams, T branches, which earlier T
outputs are reused, every coefficient); this module prints it for `templates/conv_streams.py.j2`.
The block computes each T branch once, just before the first update that reads it, and the
updates in the algorithm's order, so an update may read streams updated before it in the block.
"""

from __future__ import annotations

from derive.algorithms.forms import Branch, Source, StreamsForm, WeightedSource


def state_variable(source: Source) -> str:
    """The local variable holding a state: new_z (this block's k + 1), past_z[l] (k − l)."""
    if source.lag == -1:
        return f"new_{source.name}"
    return f"past_{source.name}[{source.lag}]"


def branch_variable(index: int) -> str:
    """t1, t2, …: this block's output of branch `index`."""
    return f"t{index + 1}"


def _pairs(terms: tuple[WeightedSource, ...], operand: dict[int, str]) -> str:
    """`(self.c, x), (self.d, y)` for _combine."""
    return ", ".join(f"(self.{w.coefficient.name}, {operand[i]})" for i, w in enumerate(terms))


def _branch_lines(index: int, branch: Branch, starts: dict[str, str]) -> list[str]:
    """The lines computing branch `index` (at k = 0 from the stage input when it reads it)."""
    out = branch_variable(index)
    call = f"self.{branch.name}"
    if branch.identity:
        state = state_variable(branch.argument[0].source)
        if branch.reads_input:
            return [f"{out} = {call}(stage_input if first else {state})"]
        return [f"{out} = {call}({state})"]
    later = _pairs(
        branch.argument, {i: state_variable(w.source) for i, w in enumerate(branch.argument)}
    )
    if not branch.reads_input:
        return [f"{out} = {call}(_combine({later}))"]
    at_input = [w for w in branch.argument if starts[w.source.name] == "input"]
    first = ", ".join(f"(self.{w.coefficient.name}, stage_input)" for w in at_input)
    return [
        "if first:  # every state T reads is z_0 (or 0) here; T reads the stage input instead",
        f"    argument = _combine({first})",
        "else:",
        f"    argument = _combine({later})",
        f"{out} = {call}(argument)",
    ]


def forward_lines(form: StreamsForm, readout: str) -> list[str]:
    """The body of Block.forward: branches, then each stream's update, then what it returns."""
    starts = {s.name: s.start for s in form.streams}
    index = {b.name: i for i, b in enumerate(form.branches)}
    lines = ["first = stage_input is not None"]
    lines += [f'past_{s.name} = states["{s.name}"]' for s in form.streams]
    done: set[str] = set()
    for stream, terms in form.updates:
        operands = {}
        for i, w in enumerate(terms):
            if w.source.kind == "state":
                operands[i] = state_variable(w.source)
                continue
            b = index[w.source.name]
            if w.source.name not in done:
                lines += _branch_lines(b, form.branches[b], starts)
                done.add(w.source.name)
            own = branch_variable(b)
            operands[i] = (
                own
                if w.source.lag == 0
                else f'_earlier(cached["{w.source.name}"], {w.source.lag}, {own})'
            )
        lines.append(f"new_{stream} = _combine({_pairs(terms, operands)})")
        if stream == readout:
            lines += [
                "if self.post_activation is not None:",
                f"    new_{stream} = self.post_activation(new_{stream})",
            ]
    new = ", ".join(f'"{s}": new_{s}' for s, _ in form.updates)
    kept = ", ".join(
        f'"{b.name}": {branch_variable(i)}' for i, b in enumerate(form.branches) if b.cached
    )
    lines.append(f"return {{{new}}}, {{{kept}}}")
    return lines


__all__ = ["branch_variable", "forward_lines", "state_variable"]
