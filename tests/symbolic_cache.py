"""One derivation per built-in activation per test process, shared by the symbolic tests.

Deriving and proving an activation is deterministic and costs up to several seconds (mish, swish,
gelu); every built-in one together costs tens of seconds. The tests that only read a record (its
Ψ, its proofs, how the command prints it) share one record per (name, parameters) and per user
expression instead of deriving it again. The first request always runs the real pipeline, so a bug
in the derivation still fails the tests that read the shared record.

`cached_derivations()` routes `derive.symbolic.pipeline` (and so `derive_all`, the docs page and
`derive activation`) through the cache for the length of a block; `cached_pipeline` is the same
as an autouse fixture for test modules that drive the command.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from unittest import mock

import pytest

from derive.limits import ACTIVATION_SECONDS_DEFAULT
from derive.symbolic import pipeline
from derive.symbolic.record import ActivationRecord

_DERIVE_ACTIVATION = pipeline.derive_activation
_DERIVE_EXPRESSION = pipeline.derive_expression


@functools.cache
def _activation(name: str, params: tuple[tuple[str, object], ...]) -> ActivationRecord:
    return _DERIVE_ACTIVATION(name, **dict(params))


_EXPRESSIONS: dict[tuple[str, str], ActivationRecord] = {}


def derive_activation(name: str, **params: object) -> ActivationRecord:
    """pipeline.derive_activation, computed once per (name, parameters) in this process."""
    return _activation(name, tuple(sorted(params.items())))


def derive_expression(
    text: str, name: str = "custom", *, seconds: float | None = ACTIVATION_SECONDS_DEFAULT
) -> ActivationRecord:
    """pipeline.derive_expression; cached only without a time budget of its own (seconds=None,
    as the command calls it) and only when no time limit stopped it, so that a cached record
    never depends on how busy the machine was."""
    if seconds is not None:
        return _DERIVE_EXPRESSION(text, name, seconds=seconds)
    key = (text, name)
    if key not in _EXPRESSIONS:
        record = _DERIVE_EXPRESSION(text, name, seconds=None)
        if record.timed_out:
            return record
        _EXPRESSIONS[key] = record
    return _EXPRESSIONS[key]


def derive_all() -> list[ActivationRecord]:
    """pipeline.derive_all (every built-in, catalog order) through the cache."""
    with cached_derivations():
        return pipeline.derive_all()


@contextlib.contextmanager
def cached_derivations() -> Iterator[None]:
    """Within the block the pipeline's own entry points (used by derive_all, the docs page and
    the command) answer from the cache."""
    with (
        mock.patch.object(pipeline, "derive_activation", derive_activation),
        mock.patch.object(pipeline, "derive_expression", derive_expression),
    ):
        yield


@pytest.fixture(autouse=True)
def cached_pipeline() -> Iterator[None]:
    """Autouse when imported into a test module: every test there uses the shared records."""
    with cached_derivations():
        yield
