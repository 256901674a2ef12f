"""A command's argparse options built from its config's declarations (derive.optionspec), and back.

`add_declared` adds every declared field of a config dataclass to a parser, in help groups;
after parsing, `given_values` returns the fields whose options were typed, ready for the config.
Which options were typed is found by parsing the same words once more with every default set to
a sentinel (`record_given`, run by derive.cli.ArgumentParser): a preset (`derive train --recipe`)
then fills in only the others, even where a typed value equals the default.
"""

from __future__ import annotations

import argparse
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import Field
from typing import Any

from derive.cli.argtypes import number
from derive.optionspec import Option, declared, default_of, flag_of

HelpLayout = tuple[tuple[str | None, str | None, tuple[str, ...]], ...]
"""Help groups in order: (title, description, option strings in order); title None: the
parser's own "options" group."""

GIVEN = "given_options"
"""The namespace attribute that holds the dests of the options typed."""


class _NotGiven(list):  # type: ignore[type-arg]
    """The sentinel default: a list, so that action="append" can copy and extend it."""


_NOT_GIVEN = _NotGiven()
_TRACKED: weakref.WeakKeyDictionary[argparse.ArgumentParser, frozenset[str]] = (
    weakref.WeakKeyDictionary()
)


def add_declared(
    parser: argparse.ArgumentParser,
    config: type,
    layout: HelpLayout,
    extras: Mapping[str, Callable[[argparse._ArgumentGroup], None]] | None = None,
) -> None:
    """Add the options declared by dataclass `config` to `parser`: positionals first, then each
    help group of `layout` with its options in order; `extras` adds the options named in the
    layout that no field declares (e.g. --threads). Every declared option must be placed."""
    extras = extras or {}
    options = {flag_of(item): (item, spec) for item, spec in declared(config)}
    placed = {name for _, _, names in layout for name in names}
    for item, spec in options.values():
        if spec.positional:
            _add(parser, item, spec)
        elif flag_of(item) not in placed:
            raise ValueError(f"{flag_of(item)} is in no help group of {parser.prog}")
    for title, description, names in layout:
        group = parser if title is None else parser.add_argument_group(title, description or None)
        for name in names:
            if name in options:
                _add(group, *options[name])
            else:
                extras[name](group)
    _TRACKED[parser] = frozenset(dest_of(item) for item, _ in options.values())


def dest_of(item: Field[Any]) -> str:
    """The namespace attribute argparse gives a declared field's option."""
    if item.metadata["option"].positional:
        return item.name
    return flag_of(item).removeprefix("--").replace("-", "_")


def _add(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, item: Field[Any], spec: Option
) -> None:
    """One add_argument call for a declared field."""
    kwargs: dict[str, Any] = {"help": spec.help}
    if spec.metavar is not None:
        kwargs["metavar"] = spec.metavar
    if spec.positional:
        parser.add_argument(item.name, **kwargs)
        return
    if spec.switch == "on":
        kwargs["action"] = "store_true"
    elif spec.switch == "either":
        kwargs.update(action=argparse.BooleanOptionalAction, default=default_of(item))
    elif spec.repeat:
        kwargs.update(action="append", default=None)
    else:
        kwargs["default"] = default_of(item)
    if spec.required:
        kwargs.update(required=True)
        kwargs.pop("default", None)
    if spec.choices is not None:
        kwargs["choices"] = spec.choices
    if spec.kind is not None:
        kwargs["type"] = number(spec.kind, spec.what, spec.low, limit=spec.limit)
    elif spec.parse is not None:
        kwargs["type"] = _argparse_type(spec.parse)
    parser.add_argument(flag_of(item), **kwargs)


def _argparse_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """`parse` as an argparse type: its ValueError's message becomes argparse's one-line error."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def record_given(
    parser: argparse.ArgumentParser, words: Sequence[str] | None, namespace: argparse.Namespace
) -> argparse.Namespace:
    """Set `namespace.given_options` to the dests of `parser`'s declared options that `words` name,
    if `parser` was built by add_declared: `words` parsed again with those defaults a sentinel."""
    dests = _TRACKED.get(parser)
    if dests is None or words is None:
        return namespace
    defaults = {dest: parser.get_default(dest) for dest in dests}
    parser.set_defaults(**dict.fromkeys(dests, _NOT_GIVEN))
    try:
        typed, _ = argparse.ArgumentParser.parse_known_args(parser, list(words))
    finally:
        parser.set_defaults(**defaults)
    setattr(namespace, GIVEN, frozenset(d for d in dests if getattr(typed, d) is not _NOT_GIVEN))
    return namespace


def given_values(args: argparse.Namespace, config: type) -> dict[str, object]:
    """The fields of `config` whose options were typed, with their values (repeated ones collected)."""
    given = getattr(args, GIVEN, frozenset())
    values: dict[str, object] = {}
    for item, spec in declared(config):
        dest = dest_of(item)
        if dest in given:
            value = getattr(args, dest)
            values[item.name] = spec.collect(value or []) if spec.collect else value
    return values


def all_values(args: argparse.Namespace, config: type) -> dict[str, object]:
    """Every declared field of `config` with its parsed value, typed or default."""
    values: dict[str, object] = {}
    for item, spec in declared(config):
        value = getattr(args, dest_of(item))
        values[item.name] = spec.collect(value or []) if spec.collect else value
    return values


__all__ = ["GIVEN", "HelpLayout", "add_declared", "all_values", "given_values", "record_given"]
