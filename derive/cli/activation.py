"""`derive activation`: energy Ψ, f, ∇f and their proofs for an activation Φ.

SymPy is imported inside run(), so `derive --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from derive.cli.argtypes import number
from derive.errors import UserError
from derive.fsutil import atomic_write_text, output_file
from derive.limits import ACTIVATION_SECONDS, ACTIVATION_SECONDS_DEFAULT

if TYPE_CHECKING:
    from derive.symbolic.record import ActivationRecord

log = logging.getLogger(__name__)

FORMATS = ("text", "latex", "json", "markdown")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")

DESCRIPTION = """\
Derive the energy of an activation Phi: Psi with Psi' = Phi (real and continuous on the real line,
normalised so that Psi(0) = 0), f(x) = ||x||^2/2 - sum_i Psi(U_i^T x) and its gradient
grad f(x) = x - U Phi(U^T x), with two independent proofs (SymPy and 40-digit mpmath) that both
must pass for 'verified'. For the eight activations of the papers, their printed formulas are
checked too (ACML 2018 Table 1, SCIS 2023 Table A1), with corrections where they fail.

Built-in activations: sigmoid, tanh, softplus, softsign, relu, leaky_relu (--alpha), elu (--a),
swish (alias silu), gelu, mish, hardtanh, relu6, hardsigmoid, hardswish, identity."""

EPILOG = """\
examples:
  derive activation swish                       text report: Phi, Psi, f, grad f, proofs, papers
  derive activation leaky_relu --alpha 0.2      exact alpha = 1/5 instead of a symbolic alpha
  derive activation elu --format json           the JSON record (name, phi, psi, energy, ...)
  derive activation --all --format json         a JSON list of every built-in activation
  derive activation --all --format markdown --out docs/activations.md
  derive activation --expr "x*exp(-x**2)" --name wiggle
  derive activation --expr "x*sigmoid(x)"       built-in activations are functions in --expr
  derive -v activation --all                    also log per-activation timings on stderr

--expr accepts numbers, x, pi, E, + - * / **, the functions exp log sqrt sin cos tan sinh cosh
tanh atan asinh erf erfc Abs Max Min sign Heaviside, every built-in activation by name as a
function of one argument (softplus(x), x*sigmoid(x), relu(x - 1); elu uses a = 1 and leaky_relu
alpha = 0.01), and Piecewise((expr, condition), ..., (expr, True)) with comparisons and and/or.
Nothing is ever evaluated as Python code."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "activation",
        help="energy, gradient and proofs for an activation",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "activation", nargs="?", metavar="NAME", help="built-in activation name (or alias)"
    )
    parser.add_argument("--all", action="store_true", help="every built-in activation")
    parser.add_argument(
        "--list", action="store_true", help="list the built-in activations and exit"
    )
    parser.add_argument(
        "--expr", metavar="EXPR", help='your own Phi(x), e.g. "x*tanh(x)" (see below)'
    )
    parser.add_argument(
        "--name", metavar="NAME", help="name for --expr (an identifier; default: custom)"
    )
    parser.add_argument(
        "--alpha", metavar="VALUE", help="leaky_relu slope, 0 <= alpha <= 1 (default: symbolic)"
    )
    parser.add_argument(
        "--a", metavar="VALUE", dest="a", help="elu scale, a > 0 (default: symbolic)"
    )
    parser.add_argument(
        "--sigma",
        metavar="S",
        help="||U||_2 for the smoothness line of text/markdown (default: sigma^2 = 1/(2M))",
    )
    parser.add_argument(
        "--time-limit",
        metavar="SECONDS",
        type=number(float, "a number of seconds >= 1", limit=ACTIVATION_SECONDS),
        help="one wall-clock budget for all of --expr: each analysis not finished by then is "
        f"reported as undecided (time limit) (default: {ACTIVATION_SECONDS_DEFAULT:g})",
    )
    parser.add_argument(
        "--format", default="text", choices=FORMATS, help="output format (default: text)"
    )
    parser.add_argument(
        "--out", metavar="FILE", help="write the output to FILE (atomically) instead of stdout"
    )
    parser.set_defaults(run=run)


def _validate(args: argparse.Namespace) -> None:
    if args.name is not None and args.expr is None:
        raise UserError("activation: --name only names an --expr expression")
    chosen = [
        flag
        for flag, on in (
            ("NAME", args.activation),
            ("--all", args.all),
            ("--expr", args.expr is not None),
            ("--list", args.list),
        )
        if on
    ]
    if not chosen:
        raise UserError("activation: give an activation NAME, --all, --expr EXPR or --list")
    if len(chosen) > 1:
        raise UserError(f"activation: {' and '.join(chosen)} cannot be combined (choose one)")
    if args.name is not None:
        if not _IDENTIFIER.fullmatch(args.name):
            raise UserError(
                f"activation: --name {args.name!r} is not an identifier (letters, digits, _; at most 40)"
            )
    if args.expr is not None and (args.alpha is not None or args.a is not None):
        raise UserError("activation: --alpha and --a apply to built-in activations, not to --expr")
    if args.time_limit is not None and args.expr is None:
        raise UserError(
            "activation: --time-limit applies to --expr (built-in activations always run to the end)"
        )
    if args.sigma is not None:
        try:
            sigma = float(args.sigma)
        except ValueError:
            raise UserError(f"activation: --sigma {args.sigma!r} is not a number") from None
        if not math.isfinite(sigma) or sigma <= 0:
            raise UserError(f"activation: --sigma must be a finite number > 0, not {args.sigma!r}")
    if args.out is not None:
        _check_out(Path(args.out))


def _check_out(path: Path) -> None:
    output_file(path, "--out")  # before the (slow) derivation: UserError if it cannot be written


def _list_text() -> str:
    from derive.symbolic import catalog  # deferred: imports SymPy

    lines = []
    for act in catalog.ACTIVATIONS:
        alias = f" (alias {', '.join(act.aliases)})" if act.aliases else ""
        params = "".join(f" [--{p.name}: {p.description}]" for p in act.parameters)
        lines.append(f"{act.name:<12} {act.formula}{alias}{params}  -- {act.description}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    _validate(args)
    if args.list:
        return _emit(_list_text(), args.out)
    from derive.symbolic import timelimit  # deferred: imports SymPy

    seconds = None
    if args.expr is not None:
        seconds = ACTIVATION_SECONDS_DEFAULT if args.time_limit is None else args.time_limit
    with timelimit.budget(seconds):  # the smoothness analysis of the output counts too
        text, records = _derive_and_render(args)
    for record in records:
        if not record.verified:
            why = " (time limit: a larger --time-limit may decide it)" if record.timed_out else ""
            log.warning("%s: NOT verified%s (see the proof sections)", record.name, why)
    return _emit(text, args.out)


def _derive_and_render(args: argparse.Namespace) -> tuple[str, list[ActivationRecord]]:
    """The output text for the chosen activations, and their records."""
    from derive.symbolic import docs, formats, pipeline  # deferred: imports SymPy

    params = {k: v for k, v in (("alpha", args.alpha), ("a", args.a)) if v is not None}
    if args.all:
        records = pipeline.derive_all(**params)
    elif args.expr is not None:
        records = [pipeline.derive_expression(args.expr, args.name or "custom", seconds=None)]
    else:
        records = [pipeline.derive_activation(args.activation, **params)]
    sigma = float(args.sigma) if args.sigma is not None else None
    if args.all and args.format == "markdown" and sigma is None:
        text = docs.render_document(records)
    elif sigma is not None and args.format in ("text", "markdown"):
        smooth = [r.smoothness(sigma) for r in records]
        text = (formats.render_text if args.format == "text" else formats.render_markdown)(
            records, smooth
        )
    else:
        text = formats.render(records, args.format, as_list=args.all)
    return text, records


def _emit(text: str, out: str | None) -> int:
    if out is None:
        sys.stdout.write(text)
        return 0
    atomic_write_text(out, text)
    log.info("wrote %s", out)
    return 0
