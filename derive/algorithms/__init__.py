"""Optimization algorithms stated in x-space, and their derived z-space layer recurrences.

from derive.algorithms import get_algorithm, recurrence_of
rec = recurrence_of(get_algorithm("heavyball"))   # the IR of SCIS (10)
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path

from derive.algorithms.builtin import ALIASES, BUILTIN
from derive.algorithms.derivation import derive_recurrence
from derive.algorithms.ir import Recurrence
from derive.algorithms.passes import DerivationError
from derive.algorithms.spec import Algorithm
from derive.algorithms.userspec import load_spec
from derive.algorithms.validate import check_recurrence
from derive.errors import UserError

__all__ = ["Algorithm", "Recurrence", "get_algorithm", "list_algorithms", "recurrence_of"]


def list_algorithms() -> list[str]:
    """Names of the built-in algorithms, in the papers' order first."""
    return list(BUILTIN)


def get_algorithm(name: str) -> Algorithm:
    """A built-in algorithm by name or alias, or a user's spec file (*.toml)."""
    if name.endswith(".toml"):
        return load_spec(Path(name))
    key = ALIASES.get(name, name)
    if key in BUILTIN:
        return BUILTIN[key]
    close = difflib.get_close_matches(name, list(BUILTIN) + list(ALIASES), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UserError(
        f"unknown algorithm {name!r}{hint} (known: {', '.join(BUILTIN)}, or a .toml spec)"
    )


@functools.cache
def _derive_builtin(name: str, with_input: bool) -> Recurrence:
    return derive_recurrence(BUILTIN[name], with_input=with_input)


def recurrence_of(algorithm: Algorithm, *, with_input: bool = False) -> Recurrence:
    """The derived z-space recurrence (cached for built-ins; derived afresh for user specs, and
    checked by derive.algorithms.validate the way the generated code will run it).

    `with_input`: for the energy F(x) = f(x) − ⟨b, x⟩, b = Uu, so the input u is injected.
    """
    try:
        if BUILTIN.get(algorithm.name) is algorithm:  # unchanged built-in: derived once per process
            return _derive_builtin(algorithm.name, with_input)
        recurrence = derive_recurrence(algorithm, with_input=with_input)
    except DerivationError as exc:
        raise UserError(f"{algorithm.name}: cannot derive a layer recurrence: {exc}") from None
    if algorithm.source_file:  # a user's spec: check it runs before any code is written
        check_recurrence(recurrence)
    return recurrence
