"""`derive regenerate`: rewrite generated/ and the generated docs from the templates and the math."""

from __future__ import annotations

import argparse
import logging

from derive.errors import UserError
from derive.fsutil import atomic_write_text

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "regenerate",
        help="rewrite generated/, docs/{algorithms,activations}.md and docs/results/claims.md here",
        description="Regenerate the committed generated code and docs. --check only reports stale files.",
        epilog="examples:\n  derive regenerate\n  derive regenerate --check --only code",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is stale"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="code, algorithms, activations or claims (repeatable)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from derive.artifacts import GROUPS, repository_root  # deferred: imports SymPy

    unknown = sorted(set(args.only) - set(GROUPS))
    if unknown:
        raise UserError(f"unknown --only {unknown}; choose from {', '.join(GROUPS)}")
    root = repository_root()
    stale = []
    for group in args.only or list(GROUPS):
        log.info("regenerating %s …", group)
        for relative, text in GROUPS[group]().items():
            path = root / relative
            current = path.read_text(encoding="utf-8") if path.is_file() else None
            if current == text:
                continue
            stale.append(relative)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, text)
                log.info("wrote %s", relative)
    if args.check:
        for relative in stale:
            print(f"stale: {relative}")
        return 1 if stale else 0
    print(f"{len(stale)} file(s) rewritten" if stale else "everything was fresh")
    return 0
