"""`derive train --help` shows its options in groups, the common ones first."""

from __future__ import annotations

import re

import pytest

from derive.cli import build_parser, main
from derive.cli.train import HELP_GROUPS

TITLES = ["data", "run folder", "model", "recipe", "schedule", "hardware"]


def _train_parser():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices["train"]


def _sections(capsys: pytest.CaptureFixture) -> dict[str, list[str]]:
    """Heading → the options listed under it, in order."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    sections: dict[str, list[str]] = {}
    current = None
    for line in capsys.readouterr().out.splitlines():
        heading = re.fullmatch(r"([a-z][a-z ]*):", line)
        if heading:
            current = sections.setdefault(heading.group(1), [])
        elif current is not None and (option := re.match(r"  (-[-\w]+)", line)):
            current.append(option.group(1))
    return sections


def test_help_groups_in_order_with_every_option_once(capsys: pytest.CaptureFixture) -> None:
    sections = _sections(capsys)
    shown = [title for title in sections if title in TITLES]
    assert shown == TITLES
    options = {a.option_strings[0] for a in _train_parser()._actions if a.option_strings}
    listed = [o for title in TITLES for o in sections[title]]
    assert sorted(listed) == sorted(options - {"-h"})  # each option in exactly one group
    assert sections["options"] == ["-h"]


def test_common_options_come_first(capsys: pytest.CaptureFixture) -> None:
    sections = _sections(capsys)
    assert sections["data"][:2] == ["--dataset", "--data-dir"]
    assert sections["run folder"][:2] == ["--out", "--resume"]
    assert sections["model"][0] == "--model-arg"
    assert sections["recipe"][:3] == ["--recipe", "--epochs", "--batch-size"]
    assert sections["schedule"][0] == "--lr"


def test_layout_names_only_real_options() -> None:
    options = {a.option_strings[0] for a in _train_parser()._actions if a.option_strings}
    named = [name for _, _, names in HELP_GROUPS for name in names]
    assert len(named) == len(set(named)) and set(named) <= options


def test_usage_follows_the_groups(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]
    positions = [usage.index(f"[{name}") for name in ("--dataset", "--model-arg", "--device")]
    assert positions == sorted(positions)
