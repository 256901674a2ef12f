"""`--cells` and `--channels` of `derive nas search` and `derive nas network`: one rule for both.

The bounds and their reasons are derive.limits.NAS_CELLS / NAS_CHANNELS (checked again by
derive.limits.check_nas_sizes in the library); this module only turns them into argparse types,
so both commands refuse the same values with the same one-line message.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from derive.cli.argtypes import number
from derive.limits import NAS_CELLS, NAS_CELLS_LOW, NAS_CHANNELS, NAS_CHANNELS_EVEN


def _even(parse: Callable[[str], float]) -> Callable[[str], float]:
    def parse_even(text: str) -> float:
        value = parse(text)
        if value % 2:
            raise argparse.ArgumentTypeError(
                f"expected an even number ({NAS_CHANNELS_EVEN}), got {text!r}"
            )
        return value

    parse_even.limit = parse.limit  # type: ignore[attr-defined]  (show_bounds prints it in --help)
    return parse_even


def add_size_options(
    group: argparse._ActionsContainer, cells: int, channels: int, what: str
) -> None:
    """Add --cells N and --channels C (defaults `cells`, `channels`) for `what` (a network's name)."""
    group.add_argument(
        "--cells",
        type=number(int, f"an integer >= 3 ({NAS_CELLS_LOW})", limit=NAS_CELLS),
        default=cells,
        metavar="N",
        help=f"cells of {what} (default {cells}); at least 3: {NAS_CELLS_LOW}",
    )
    group.add_argument(
        "--channels",
        type=_even(number(int, "an even integer >= 2", limit=NAS_CHANNELS)),
        default=channels,
        metavar="C",
        help=f"initial channels of {what} (default {channels}); even: {NAS_CHANNELS_EVEN}",
    )
