"""`derive network`: render an algorithm's recurrence into formatted PyTorch source and write it."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sympy as sp
from ruff.__main__ import find_ruff_bin

from derive.algorithms import get_algorithm, recurrence_of
from derive.algorithms.spec import Algorithm, Coefficient
from derive.algorithms.userspec import spec_number
from derive.codegen.conv import render_conv
from derive.codegen.fc import render_fc
from derive.errors import UserError
from derive.fsutil import atomic_write_text, staged_files

FORMS = ("fc", "conv")
LINE_LENGTH = 100
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratedFile:
    """One generated module: its file name and its (formatted) source."""

    filename: str
    source: str


def format_source(source: str) -> str:
    """Format with `ruff format` (line length 100, no configuration file read): the same input
    always gives the same bytes, wherever derive runs, and the result passes `ruff format --check`.
    """
    command = [find_ruff_bin(), "format", "--isolated", f"--line-length={LINE_LENGTH}", "-"]
    done = subprocess.run(command, input=source, capture_output=True, text=True, check=False)
    if done.returncode != 0:  # a template bug, not a user error: say where
        raise RuntimeError(f"ruff format failed on a generated module: {done.stderr.strip()}")
    return done.stdout


def generate(
    algorithm: str, form: str, coefficients: Mapping[str, float] | None = None
) -> GeneratedFile:
    """The module `ALGO_fc.py` or `ALGO_conv.py` for a built-in name or a spec file.

    `coefficients` replaces the algorithm's default coefficient values (β, κ, …) in the module.
    """
    if form not in FORMS:
        raise UserError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    spec = with_defaults(get_algorithm(algorithm), coefficients or {})
    recurrence = recurrence_of(spec, with_input=form == "fc")  # fc: the input u enters layers
    invoked = algorithm if algorithm.endswith(".toml") else None  # a spec: its path as typed
    source = render_fc(recurrence) if form == "fc" else render_conv(recurrence, invoked)
    return GeneratedFile(f"{spec.name}_{form}.py", format_source(source))


def with_defaults(algorithm: Algorithm, values: Mapping[str, float]) -> Algorithm:
    """The algorithm with new default coefficient values, each checked against its bounds."""
    if not values:
        return algorithm
    known = {c.name: c for c in algorithm.coefficients}
    replaced = []
    for name, value in values.items():
        if name not in known:
            names = ", ".join(known) or "none"
            raise UserError(f"{algorithm.name} has no coefficient {name!r} (known: {names})")
        check_coefficient(known[name], value)
    for c in algorithm.coefficients:
        if c.name in values:
            c = dataclasses.replace(c, default=sp.nsimplify(values[c.name], rational=True))
        replaced.append(c)
    return dataclasses.replace(algorithm, coefficients=tuple(replaced))


def check_coefficient(coefficient: Coefficient, value: object) -> None:
    """UserError unless `value` is a finite number within the coefficient's bounds (and within
    the bound of every number a spec gives, derive.algorithms.userspec.spec_number)."""
    value = spec_number(value, f"coefficient {coefficient.name}")
    low, high = coefficient.minimum, coefficient.maximum
    if low is not None and (value < low or (coefficient.strict_minimum and value == low)):
        op = ">" if coefficient.strict_minimum else ">="
        raise UserError(f"coefficient {coefficient.name} must be {op} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise UserError(f"coefficient {coefficient.name} must be <= {high:g}, got {value:g}")


def write_network(
    algorithm: str,
    form: str,
    out_dir: str | os.PathLike[str],
    coefficients: Mapping[str, float] | None = None,
) -> Path:
    """Generate, then write into `out_dir` through a staging directory (no partial files)."""
    generated = generate(algorithm, form, coefficients)
    with staged_files(out_dir) as stage:
        atomic_write_text(stage / generated.filename, generated.source)
    path = Path(out_dir) / generated.filename
    log.info("wrote %s", path)
    return path
