"""`derive demo`: the main job on offline defaults, in about a minute (what `make demo` runs)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from derive.cli import main as derive_main
from derive.cli.argtypes import add_threads_option
from derive.errors import UserError
from derive.fsutil import ensure_output_dir

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="derive every energy, generate every network, run the quick simulation",
        description="The whole pipeline on defaults that work offline: (1) energies and proofs for all "
        "activations, (2) the layer recurrences and PyTorch code of every built-in algorithm, (3) the "
        "papers' simulation experiment, reduced (derive simulate --quick).",
        epilog="example:\n  derive demo --out out/demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", default="out/demo", help="where to write everything (default out/demo)"
    )
    parser.add_argument(
        "--skip-simulation", action="store_true", help="stop after generating the code"
    )
    add_threads_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from derive.algorithms import get_algorithm, list_algorithms  # deferred: imports SymPy

    out = ensure_output_dir(args.out)
    start = time.perf_counter()

    print("1/3  energies: derive activation --all (SymPy derivation, symbolic + mpmath proofs)")
    _run(
        derive_main,
        ["activation", "--all", "--format", "markdown", "--out", str(out / "activations.md")],
    )

    print("2/3  networks: derive network --algo ALGO --form fc|conv (x = Uz, then Jinja templates)")
    for name in list_algorithms():
        algorithm = get_algorithm(name)
        for form in ("fc", "conv"):
            _run(
                derive_main,
                ["-q", "network", "--algo", name, "--form", form, "--out", str(out / "generated")],
            )
        print(f"       {name:16s} {algorithm.title}")

    if not args.skip_simulation:
        print("3/3  simulation: derive simulate --quick (SCIS Table B1, reduced)")
        _run(derive_main, ["simulate", "--quick", "--force", "--out", str(out / "simulation")])

    print(f"\ndone in {time.perf_counter() - start:.0f} s; results are in {out}/:")
    for path in sorted(Path(out).rglob("*")):
        if path.is_file():
            print(f"  {path}")
    return 0


def _run(derive_main: object, argv: list[str]) -> None:
    code = derive_main(argv)  # type: ignore[operator]
    if code:
        raise UserError(f"step `derive {' '.join(argv)}` failed (exit status {code})")
