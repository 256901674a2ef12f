"""The run-time checks of user specs run printed code only after its syntax tree passed a whitelist."""

from __future__ import annotations

import pytest

from derive.algorithms import get_algorithm, recurrence_of
from derive.algorithms.pycode import CoefficientPrinter
from derive.algorithms.validate import check_numbers, checked_code
from derive.errors import UserError

NAMES = {"c_beta", "s_mom", "k", "j", "row", "depth", "math"}

FORBIDDEN = {
    "an attribute": ("c_beta.__class__", "eval", "attribute"),
    "a dunder through math": ("math.__loader__", "eval", "attribute"),
    "a call of another name": ("open('x')", "eval", "'open'"),
    "__import__": ("__import__('os').getpid()", "eval", "__import__"),
    "an import": ("import os", "exec", "Import"),
    "a lambda": ("(lambda: 1)()", "eval", "lambda"),
    "a string": ("'text'", "eval", "constant"),
    "a keyword argument": ("max(1, key=abs)", "eval", "keyword"),
    "a call of a call": ("max(1, 2)(3)", "eval", "calls"),
    "a global statement": ("global k", "exec", "Global"),
}


@pytest.mark.parametrize("case", list(FORBIDDEN))
def test_forbidden_code_is_refused_before_it_compiles(case: str) -> None:
    source, mode, message = FORBIDDEN[case]
    with pytest.raises(UserError, match="not run") as info:
        checked_code(source, mode, NAMES, "spec")
    assert message in str(info.value)


def test_the_printed_code_of_every_kind_passes() -> None:
    """Schedule loops, piecewise conditions, math functions and table lookups are allowed."""
    source = "\n".join(
        [
            "s_mom: list[float] = [1.0]",
            "for k in range(1, depth + 2):",
            "    if k <= 3 and not k == 2:",
            "        s_mom.append(math.sqrt(c_beta) * s_mom[k - 1] / 2)",
            "    else:",
            "        s_mom.append(abs(-1.5) ** 2 if k % 2 else max(0.0, 1 - 1 / k))",
        ]
    )
    namespace: dict[str, object] = {"math": __import__("math"), "depth": 4, "c_beta": 0.25}
    exec(checked_code(source, "exec", NAMES, "spec"), namespace)  # noqa: S102
    assert len(namespace["s_mom"]) == 6  # type: ignore[arg-type]


def test_a_printer_that_emitted_other_code_would_be_stopped(monkeypatch) -> None:
    """Whatever the printer returns is checked before it runs: here a call of __import__."""
    monkeypatch.setattr(
        CoefficientPrinter, "doprint", lambda self, expr: "__import__('os').getpid()"
    )
    recurrence = recurrence_of(get_algorithm("heavyball"))
    with pytest.raises(UserError, match="__import__.*not run"):
        check_numbers(recurrence, depth=3)
