"""`derive network`: an algorithm's layer recurrence, and the PyTorch code it inspires."""

from __future__ import annotations

import argparse
import json
import re

from derive.cli.argtypes import number
from derive.errors import UserError
from derive.limits import SHOW_DEPTH

EXAMPLES = """examples:
  derive network --list
  derive network --algo heavyball --show                   x-space iteration → z-space recurrence
  derive network --algo nesterov --show --format latex --depth 4
  derive network --algo heavyball --form fc --out generated/        writes generated/heavyball_fc.py
  derive network --algo heavyball --out generated/                  writes generated/heavyball_conv.py
  derive network --algo heavyball --reversible --out nets/          the same, checked invertible
  derive network --algo heavyball --form fc --coef beta=0.5 --out my_nets/
  derive network --algo my_method.toml --form fc --out my_nets/     a user's own iteration (docs/algorithms.md)"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "network",
        help="derive an algorithm's layer recurrence and generate its PyTorch code",
        description="Substitute x = Uz into an optimization algorithm, read off the layer recurrence, "
        "and render it into PyTorch code through the Jinja templates.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--algo", metavar="ALGO", help="built-in algorithm name or a .toml spec file"
    )
    parser.add_argument(
        "--form",
        default="conv",
        help="fc: the fully connected network, one layer per iteration (build_tied/build_untied); "
        "conv: the engineering form of appendix C (default)",
    )
    parser.add_argument("--out", metavar="DIR", help="directory to write ALGO_FORM.py into")
    parser.add_argument(
        "--show", action="store_true", help="print the iteration and its derived recurrence"
    )
    parser.add_argument(
        "--format", default="text", help="for --show: text (default), latex or json"
    )
    parser.add_argument(
        "--depth",
        default=4,
        type=number(int, "an integer >= 1", 1, limit=SHOW_DEPTH),
        metavar="N",
        help="for --show: list coefficient schedules for k < N (default 4)",
    )
    parser.add_argument(
        "--coef",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an algorithm coefficient (e.g. beta=0.5); repeatable",
    )
    parser.add_argument(
        "--reversible",
        action="store_true",
        help="require a recurrence that can be run backwards (its oldest state enters linearly, "
        "outside T, with a non-zero coefficient): exit 2 naming the reason otherwise; the conv "
        "code then carries the inverse step (derive train --memory reversible)",
    )
    parser.add_argument("--list", action="store_true", help="list the built-in algorithms")
    parser.set_defaults(run=run)


def parse_coefficients(items: list[str]) -> dict[str, float]:
    """['beta=0.5'] → {'beta': 0.5}; UserError on anything else."""
    values: dict[str, float] = {}
    for item in items:
        match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S+)\s*", item)
        if not match:
            raise UserError(f"--coef expects NAME=VALUE, got {item!r}")
        name, text = match.groups()
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"--coef {name}: {text!r} is not a number") from None
        if name in values:
            raise UserError(f"--coef {name} given twice")
        values[name] = value
    return values


def run(args: argparse.Namespace) -> int:
    from derive.algorithms import get_algorithm, list_algorithms  # deferred: imports SymPy

    # deferred: imports SymPy
    from derive.codegen.generate import FORMS, with_defaults, write_network

    if args.list:
        for name in list_algorithms():
            algorithm = get_algorithm(name)
            print(f"{name:16s} {algorithm.title} — {algorithm.equation}")
        return 0
    if not args.algo:
        raise UserError("--algo is required (see `derive network --list`)")
    if args.form not in FORMS:
        raise UserError(f"unknown form {args.form!r}; choose one of {', '.join(FORMS)}")
    if args.format not in ("text", "latex", "json"):
        raise UserError(f"unknown --format {args.format!r}; choose text, latex or json")
    depth = args.depth
    coefficients = parse_coefficients(args.coef)
    algorithm = with_defaults(get_algorithm(args.algo), coefficients)
    if not args.show and not args.out and not args.reversible:
        raise UserError(
            "nothing to do: give --out DIR to write code, or --show to print the recurrence"
        )
    if args.reversible:
        from derive.algorithms import recurrence_of  # deferred: imports SymPy
        from derive.algorithms.forms import invertibility  # deferred: imports SymPy

        inverse = invertibility(recurrence_of(algorithm))
        if not inverse.invertible:
            raise UserError(f"{algorithm.name}: --reversible: not invertible: {inverse.reason}")
        if not args.show and not args.out:
            print(f"{algorithm.name}: invertible: {inverse.equation}")
    if args.show:
        print(show(algorithm, args.format, depth))
    if args.out:
        write_network(args.algo, args.form, args.out, coefficients)  # logs "wrote PATH"
    return 0


def show(algorithm: object, fmt: str, depth: int) -> str:
    """The iteration, the derived recurrence and the first schedule values, as text/latex/json."""
    from derive.algorithms import recurrence_of  # deferred: imports SymPy
    from derive.algorithms.forms import invertibility  # deferred: imports SymPy
    from derive.algorithms.ir import unroll_accumulators  # deferred: imports SymPy
    from derive.algorithms.render import (  # deferred: imports SymPy
        algorithm_latex,
        algorithm_lines,
        initial_conditions_text,
        recurrence_latex,
        recurrence_lines,
    )
    from derive.algorithms.schedules import ScheduleTable  # deferred: imports SymPy

    recurrence = recurrence_of(algorithm)  # type: ignore[arg-type]
    inverse = invertibility(recurrence)
    unrolled = unroll_accumulators(recurrence)
    table = ScheduleTable(recurrence.schedules, recurrence.coefficient_values(), exact=True)
    schedules: dict[str, list[str]] = {}
    for schedule in recurrence.schedules:
        if schedule.two_index:
            rows = [
                [table.value(schedule.name, kk, jj) for jj in range(kk)]
                for kk in range(1, depth + 1)
            ]
            schedules[schedule.name] = [str([_short(v) for v in row]) for row in rows]
        else:
            schedules[schedule.name] = [
                _short(table.value(schedule.name, kk)) for kk in range(depth)
            ]
    if fmt == "json":
        return json.dumps(
            {
                "name": recurrence.name,
                "title": recurrence.algorithm.title,
                "equation": recurrence.algorithm.equation,
                "iteration": algorithm_lines(recurrence.algorithm),
                "recurrence": recurrence_lines(recurrence),
                "recurrence_unrolled": recurrence_lines(unrolled)
                if unrolled != recurrence
                else None,
                "z_equation": recurrence.algorithm.z_equation,
                "schedules": schedules,
                "invertible": inverse.invertible,
                "inverse": inverse.equation or None,
                "not_invertible_because": inverse.reason or None,
            },
            indent=2,
            ensure_ascii=False,
        )
    if fmt == "latex":
        lines = [f"% {recurrence.algorithm.title}, {recurrence.algorithm.equation}"]
        lines += [line + r" \\" for line in algorithm_latex(recurrence.algorithm)]
        lines += [
            "% layer recurrence"
            + (f", {recurrence.algorithm.z_equation}" if recurrence.algorithm.z_equation else "")
        ]
        lines += [line + r" \\" for line in recurrence_latex(recurrence)]
        return "\n".join(lines)
    out = [
        f"{recurrence.algorithm.title} — {recurrence.algorithm.equation}",
        "",
        "iteration (x-space):",
    ]
    out += [f"    {line}" for line in algorithm_lines(recurrence.algorithm)]
    where = f" = {recurrence.algorithm.z_equation}" if recurrence.algorithm.z_equation else ""
    out += ["", f"layer recurrence (z-space, x = Uz, T(z) = Φ(Wz)){where}:"]
    out += [f"    {line}" for line in recurrence_lines(recurrence)]
    if unrolled != recurrence:
        out += ["", "with the accumulators unrolled:"]
        out += [f"    {line}" for line in recurrence_lines(unrolled)]
    if schedules:
        out += ["", f"coefficient schedules (exact, first {depth}):"]
        for name, values in schedules.items():
            out += [f"    {name}: {', '.join(values)}"]
    out += ["", "run backwards (the engineering form's inverse step, --memory reversible):"]
    out += [f"    {inverse.summary()}"]
    del initial_conditions_text
    return "\n".join(out)


def _short(value: object) -> str:
    import sympy as sp

    text = str(value)
    if len(text) > 40:
        return f"{sp.N(value, 12)}…"
    return text
