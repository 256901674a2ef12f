"""Which options the user typed: so a preset (`derive train --recipe`) fills in only the others.

An option's value alone cannot tell: `--recipe darts-eval --batch-size 64` asks for 64 although
64 is the parser's default. `track_explicit(parser, dests)` makes the actions of those options
record their dest in the namespace when they are given; `explicit(args)` reads the record.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterable, Sequence

ATTRIBUTE = "explicit_options"


def track_explicit(parser: argparse.ArgumentParser, dests: Iterable[str] | None = None) -> None:
    """Make every action of `parser` whose dest is in `dests` (default: all) record that it was given."""
    wanted = None if dests is None else set(dests)
    for action in parser._actions:  # argparse has no public list of a parser's actions
        if isinstance(action, argparse._HelpAction):
            continue
        if wanted is None or action.dest in wanted:
            action.__class__ = _recording(type(action))


def explicit(args: argparse.Namespace) -> frozenset[str]:
    """The dests of the tracked options given on the command line."""
    return frozenset(getattr(args, ATTRIBUTE, frozenset()))


@functools.cache
def _recording(base: type[argparse.Action]) -> type[argparse.Action]:
    class Recording(base):  # type: ignore[misc, valid-type]
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: str | Sequence[object] | None,
            option_string: str | None = None,
        ) -> None:
            super().__call__(parser, namespace, values, option_string)
            setattr(namespace, ATTRIBUTE, explicit(namespace) | {self.dest})

    Recording.__name__ = Recording.__qualname__ = f"Recording{base.__name__}"
    return Recording


__all__ = ["explicit", "track_explicit"]
