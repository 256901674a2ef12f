"""The fc form: `ALGO_fc.py` with build_tied / build_untied, from the IR."""

from __future__ import annotations

import re

import sympy as sp

from derive.algorithms.ir import Recurrence
from derive.algorithms.pycode import (
    bindings,
    constants_code,
    initial_code,
    output_code,
    schedule_code,
    step_code,
)
from derive.algorithms.render import algorithm_lines, output_text, recurrence_lines
from derive.codegen.templates import render

# Activation name → the torch function the generated code calls (names as in derive.symbolic).
TORCH_ACTIVATIONS: tuple[tuple[str, str], ...] = (
    ("sigmoid", "torch.sigmoid"),
    ("tanh", "torch.tanh"),
    ("softplus", "F.softplus"),
    ("softsign", "F.softsign"),
    ("relu", "torch.relu"),
    ("leaky_relu", "F.leaky_relu"),
    ("elu", "F.elu"),
    ("swish", "F.silu"),
    ("silu", "F.silu"),
    ("gelu", "F.gelu"),
    ("mish", "F.mish"),
    ("hardtanh", "F.hardtanh"),
    ("relu6", "F.relu6"),
    ("hardsigmoid", "F.hardsigmoid"),
    ("hardswish", "F.hardswish"),
    ("selu", "F.selu"),
    ("identity", "torch.nn.Identity()"),
)


def class_name(algorithm_name: str, suffix: str) -> str:
    """'heavyball', 'FC' → 'HeavyballFC'; 'triple_momentum' → 'TripleMomentumFC'."""
    return "".join(part.capitalize() for part in algorithm_name.split("_")) + suffix


def render_fc(recurrence: Recurrence) -> str:
    """Source of `ALGO_fc.py` (unformatted; derive.codegen.generate formats it)."""
    algorithm = recurrence.algorithm
    coefficients = [
        {"name": c.name, "variable": c.variable, "default": repr(float(sp.N(c.default, 17)))}
        for c in recurrence.coefficients
    ]
    step = step_code(recurrence)
    output = output_code(recurrence)
    read = " ".join([*step.assignments, output])
    forward_names = {
        name
        for name in [c.variable for c in recurrence.coefficients]
        + [c.name for c in recurrence.algorithm.constants]
        if re.search(rf"\b{name}\b", read)
    }
    return render(
        "fc.py.j2",
        name=algorithm.name,
        title=algorithm.title,
        reference=algorithm.reference,
        equation=algorithm.equation,
        z_equation=algorithm.z_equation,
        x_lines=algorithm_lines(algorithm),
        z_lines=recurrence_lines(recurrence),
        output_text=output_text(recurrence),
        class_name=class_name(algorithm.name, "FC"),
        coefficients=coefficients,
        constants=constants_code(recurrence),
        schedules=schedule_code(recurrence.schedules),
        initial_lines=initial_code(recurrence),
        step=step,
        output=output,
        forward_names=forward_names,
        init_bindings=bindings(
            recurrence, [c.name for c in recurrence.algorithm.constants if c.name in forward_names]
        ),
        activations=TORCH_ACTIVATIONS,
        has_input=recurrence.has_input(),
    )
