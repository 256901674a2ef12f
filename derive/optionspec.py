"""Each command-line option declared once, on the config field it sets.

A config dataclass declares an option with `option(default, help=..., ...)`: the field's default,
and in its metadata the flag, help text, bound (derive.limits), choices and metavar. The command's
parser is built from these declarations (derive.cli.options_parser), and the config's validate
checks the same bound and choices (`check_option`) for callers of the Python API. Torch-free, so
`derive --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from derive.errors import need
from derive.limits import Limit

OPTION = "option"
"""The key of a field's metadata that holds its Option."""


@dataclass(frozen=True)
class Option:
    """How one config field appears on the command line.

    kind (int or float) with `what` and `low` or `limit`: a number, refused outside its bound with
    'expected WHAT, got TEXT'; parse: any other text → value (a ValueError's message is the error);
    switch: "on" for a flag that only turns the option on, "either" for --NAME / --no-NAME;
    repeat: the flag may be given several times, and `collect` turns the list into the field's value.
    """

    help: str
    flag: str = ""  # default: --FIELD-NAME
    metavar: str | None = None
    kind: type | None = None
    what: str = ""
    low: float = 0
    limit: Limit | None = None
    parse: Callable[[str], object] | None = None
    choices: tuple[str, ...] | None = None
    switch: str = ""
    repeat: bool = False
    collect: Callable[[list[Any]], object] | None = None
    required: bool = False
    positional: bool = False


def option(default: Any = MISSING, *, factory: Any = MISSING, **spec: Any) -> Any:
    """A dataclass field with `default` (or `factory`) and its command-line Option (`spec`)."""
    return field(default=default, default_factory=factory, metadata={OPTION: Option(**spec)})


def flag_of(item: Field[Any]) -> str:
    """The option string of a declared field: its Option's flag, or --FIELD-NAME."""
    spec = item.metadata[OPTION]
    if spec.positional:
        return spec.metavar or item.name.upper()
    return spec.flag or "--" + item.name.replace("_", "-")


def declared(cls: type) -> Iterator[tuple[Field[Any], Option]]:
    """The fields of dataclass `cls` that are command-line options, in declaration order."""
    for item in fields(cls):
        if OPTION in item.metadata:
            yield item, item.metadata[OPTION]


def default_of(item: Field[Any]) -> Any:
    """A field's default value (None for a required one)."""
    if item.default_factory is not MISSING:
        return item.default_factory()
    return None if item.default is MISSING else item.default


def check_option(config: object, name: str) -> None:
    """UserError if field `name` of `config` is outside its declared bound or choices.

    A field whose default is None may be None (the option was not given)."""
    item = next(f for f in fields(config) if f.name == name)  # type: ignore[arg-type]
    spec, value, flag = item.metadata[OPTION], getattr(config, name), flag_of(item)
    if value is None and default_of(item) is None:
        return
    if spec.limit is not None:
        spec.limit.check(value, flag)
    if spec.choices is not None:
        need(
            value in spec.choices,
            f"{flag} must be one of {', '.join(spec.choices)}, got {value!r}",
        )
