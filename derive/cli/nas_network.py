"""`derive nas network`: (being written)."""

from __future__ import annotations

import argparse

from derive.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("network", help="(not yet available)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("derive nas network is not available yet")
