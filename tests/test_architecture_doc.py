"""docs/architecture.md's "Finding a network" table names real files and every zoo network."""

from __future__ import annotations

import re
from pathlib import Path

from derive.codegen.papers import ZOO

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _section() -> str:
    return DOC.split("## Finding a network", 1)[1].split("\n## ", 1)[0]


def _rows() -> list[list[str]]:
    lines = [line for line in _section().splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_every_path_in_the_table_exists() -> None:
    paths = re.findall(r"`((?:templates|generated|tests|derive)/[^`]+)`", _section())
    paths = [p for p in paths if "ALGO" not in p]
    assert len(paths) > 20
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing


def test_every_zoo_network_is_in_the_row_of_its_algorithm() -> None:
    rows = {row[1].strip("`"): row[0] for row in _rows()}
    for entry in ZOO:
        networks = rows[entry.algorithm]
        named = set(re.findall(r"[a-z]+\d+", networks))
        ranges = re.findall(r"([a-z]+)(\d+) … \1(\d+)", networks)
        depth = int(re.sub(r"\D", "", entry.name))
        family = entry.name.rstrip("0123456789")
        in_range = any(f == family and int(a) <= depth <= int(b) for f, a, b in ranges)
        assert entry.name in named or in_range, (entry.name, entry.algorithm)


FORM_OF_TEMPLATE = {  # how a generated module's first line names the form its template prints
    "conv_lagged.py.j2": ("(C1)", "(C2)", "lagged"),
    "conv_dense.py.j2": ("(C3)/(C6)",),
    "conv_streams.py.j2": ("multi-stream", "(C5)"),
}


def test_generated_file_and_template_match_the_algorithm() -> None:
    for row in _rows():
        algorithm = row[1].strip("`")
        assert row[4] == f"`generated/{algorithm}_conv.py`"
        first = (ROOT / row[4].strip("`")).read_text(encoding="utf-8").splitlines()[0]
        form = re.search(rf"\({algorithm}, conv form (.+)\)\.$", first).group(1)
        assert form in FORM_OF_TEMPLATE[row[3].strip("`").split("/")[-1]]
