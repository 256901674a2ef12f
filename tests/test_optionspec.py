"""Options declared on config fields: the parsers built from them, and which options were typed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from derive.cli import ArgumentParser, build_parser
from derive.cli.options_parser import add_declared, given_values
from derive.errors import UserError
from derive.limits import Limit
from derive.optionspec import check_option, option


@dataclass
class _Config:
    name: str = option(positional=True, help="a name")
    count: int = option(3, kind=int, what="an integer >= 0", limit=Limit(0, 9, "few"), help="n")
    mode: str = option("a", choices=("a", "b"), help="mode")
    fast: bool = option(False, switch="on", help="go fast")
    tags: list[str] = option(factory=list, flag="--tag", repeat=True, collect=sorted, help="t")


LAYOUT = (
    ("first", "the first group", ("--mode", "--count")),
    ("second", None, ("--fast", "--tag")),
)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="derive demo")
    add_declared(parser, _Config, LAYOUT)
    return parser


def test_typed_options_are_known_even_at_their_defaults() -> None:
    args = _parser().parse_args(["x", "--count", "3", "--tag", "b", "--tag", "a"])
    assert (args.count, args.mode, args.fast) == (3, "a", False)  # the defaults fill the rest
    assert given_values(args, _Config) == {"name": "x", "count": 3, "tags": ["a", "b"]}
    assert given_values(_parser().parse_args(["x"]), _Config) == {"name": "x"}


def test_bounds_and_choices_are_refused_by_the_parser_and_the_config() -> None:
    with pytest.raises(UserError, match="--count: expected an integer >= 0 of at most 9"):
        _parser().parse_args(["x", "--count", "10"])
    with pytest.raises(UserError, match="invalid choice: 'c'"):
        _parser().parse_args(["x", "--mode", "c"])
    with pytest.raises(UserError, match=r"--count must be between 0 and 9 \(few\), got 10"):
        check_option(_Config("x", count=10), "count")
    with pytest.raises(UserError, match="--mode must be one of a, b, got 'c'"):
        check_option(_Config("x", mode="c"), "mode")


def test_help_follows_the_layout_and_every_option_needs_a_group() -> None:
    text = _parser().format_help()  # the fields declare --count before --mode
    lines = ["first:", "  --mode", "  --count", "second:", "  --fast", "  --tag"]
    positions = [text.index(f"\n{line}") for line in lines]
    assert positions == sorted(positions)
    with pytest.raises(ValueError, match="--fast is in no help group"):
        add_declared(
            argparse.ArgumentParser(), _Config, (("only", None, ("--mode", "--count", "--tag")),)
        )


def test_simulate_quick_yields_to_options_typed_at_their_defaults() -> None:
    from derive.cli.simulate import build_config

    config = build_config(build_parser().parse_args(["simulate", "--quick", "--epochs", "1000"]))
    assert (config.epochs, config.samples) == (1000, 1000)  # --quick's samples, the typed epochs
