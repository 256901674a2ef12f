"""`derive nas search`: (being written)."""

from __future__ import annotations

import argparse

from derive.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("search", help="(not yet available)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("derive nas search is not available yet")
