"""`derive regenerate`: placeholder until its issue lands (replaced, never shipped as done)."""

from __future__ import annotations

import argparse

from derive.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("regenerate", help="(in progress)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise UserError("'derive regenerate' is not available yet")
