"""A searched architecture (genotype): which operation on which input for every node of the two cells.

JSON form (genotype.json, written by `derive nas search`, read by `derive nas network`)::

    {"space": "darts",
     "normal": [[["sep_conv_3x3", 0], ["sep_conv_3x3", 1]], ...],   one list of [op, input] per node
     "normal_concat": [2, 3, 4, 5],
     "reduce": [...], "reduce_concat": [...]}

Inputs are numbered as DARTS: 0 = c_{k−2}, 1 = c_{k−1}, 2, 3, … = the cell's intermediate nodes in
order; node i (0-based) may read inputs 0 … i + 1 only. A node may take any number of inputs ≥ 1
(DARTS keeps 2, the heavy-ball space 3, two of them possibly from the same input).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from derive.errors import UserError
from derive.limits import GENOTYPE_BYTES, NAS_NODE_INPUTS, NAS_NODES, TITLE_CHARS
from derive.nas.ops import OP_NAMES, PARAMETER_FREE
from derive.readers import read_json

Gene = tuple[tuple[tuple[str, int], ...], ...]  # per node: ((op, input), ...)
STRIDED_WEIGHTS = frozenset({"skip_connect", "neg_skip_connect"})
"""Parameter-free at stride 1, but ±FactorizedReduce (weights) on a reduction edge."""
KEYS = ("space", "normal", "normal_concat", "reduce", "reduce_concat")


@dataclass(frozen=True)
class Genotype:
    """The normal and the reduction cell of a searched network, and the space it came from."""

    normal: Gene
    normal_concat: tuple[int, ...]
    reduce: Gene
    reduce_concat: tuple[int, ...]
    space: str = "darts"

    def __post_init__(self) -> None:
        for cell in ("normal", "reduce"):
            check_cell(cell, getattr(self, cell), getattr(self, f"{cell}_concat"))

    def to_json(self) -> dict[str, object]:
        """The contract's JSON object (lists, not tuples)."""
        return {
            "space": self.space,
            "normal": [[[op, i] for op, i in node] for node in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[[op, i] for op, i in node] for node in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def dumps(self) -> str:
        """Deterministic JSON text with one node per line."""
        data = self.to_json()
        lines = ["{", f'  "space": {json.dumps(self.space)},']
        for cell in ("normal", "reduce"):
            nodes = [json.dumps(node) for node in data[cell]]  # type: ignore[union-attr]
            lines.append(f'  "{cell}": [')
            lines += [f"    {node}," for node in nodes[:-1]] + [f"    {nodes[-1]}", "  ],"]
            concat = json.dumps(data[f"{cell}_concat"])
            lines.append(f'  "{cell}_concat": {concat}' + ("," if cell == "normal" else ""))
        return "\n".join(lines + ["}"]) + "\n"

    def cell(self, reduction: bool) -> tuple[Gene, tuple[int, ...]]:
        return (self.reduce, self.reduce_concat) if reduction else (self.normal, self.normal_concat)

    def parameter_free(self, reduction: bool = False) -> list[bool]:
        """Per operation of the cell, node by node: True when it holds no weights as built.

        The stride-2 ±identity of a reduction cell (on inputs 0 and 1) is ±FactorizedReduce, with
        weights; at stride 1 it is ±x, and zero and the pools have no weights at any stride."""
        gene, _ = self.cell(reduction)
        return [
            op in PARAMETER_FREE and not (reduction and source < 2 and op in STRIDED_WEIGHTS)
            for node in gene
            for op, source in node
        ]

    def collapsed(self, reduction: bool = False) -> bool:
        """True when no operation of the cell holds weights (the DARTS collapse): see
        `parameter_free`, so a reduction cell of stride-2 identities is not collapsed."""
        return all(self.parameter_free(reduction))


def check_cell(cell: str, gene: Gene, concat: Sequence[int]) -> None:
    """UserError unless every node reads earlier inputs with known operations and concat names nodes."""
    if not gene:
        raise UserError(f"genotype {cell}: the cell has no nodes")
    if len(gene) > NAS_NODES.high:
        raise UserError(
            f"genotype {cell}: {len(gene)} nodes, at most {NAS_NODES.high:g} ({NAS_NODES.reason})"
        )
    for i, node in enumerate(gene):
        if not node:
            raise UserError(f"genotype {cell}: node {i} has no inputs")
        if len(node) > NAS_NODE_INPUTS.high:
            raise UserError(
                f"genotype {cell}: node {i} has {len(node)} inputs, at most "
                f"{NAS_NODE_INPUTS.high:g} ({NAS_NODE_INPUTS.reason})"
            )
        for op, source in node:
            if op not in OP_NAMES:
                raise UserError(
                    f"genotype {cell}: node {i}: unknown operation {op!r} (known: {', '.join(OP_NAMES)})"
                )
            if not 0 <= source < i + 2:
                raise UserError(
                    f"genotype {cell}: node {i} reads input {source}, but only 0..{i + 1} exist before it"
                )
    if not concat:
        raise UserError(f"genotype {cell}_concat is empty")
    for index in concat:
        if not 0 <= index < len(gene) + 2:
            raise UserError(
                f"genotype {cell}_concat names node {index}, but the cell has inputs 0..{len(gene) + 1}"
            )
    if len(set(concat)) != len(concat):
        raise UserError(f"genotype {cell}_concat repeats a node: {list(concat)}")


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"genotype {what} must be an integer, got {value!r}")
    return value


def _gene(value: object, cell: str) -> Gene:
    if not isinstance(value, list):
        raise UserError(f"genotype {cell} must be a list of nodes, got {type(value).__name__}")
    nodes = []
    for i, node in enumerate(value):
        if not isinstance(node, list):
            raise UserError(f"genotype {cell} node {i} must be a list of [op, input] pairs")
        pairs = []
        for pair in node:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise UserError(
                    f"genotype {cell} node {i}: expected [op, input], got {json.dumps(pair)[:80]}"
                )
            pairs.append((pair[0], _int(pair[1], f"{cell} node {i} input")))
        nodes.append(tuple(pairs))
    return tuple(nodes)


def _concat(value: object, cell: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise UserError(f"genotype {cell}_concat must be a list of node indices")
    return tuple(_int(v, f"{cell}_concat entry") for v in value)


def from_json(data: object) -> Genotype:
    """Validate a parsed genotype JSON object; UserError naming the first problem."""
    if not isinstance(data, Mapping):
        raise UserError("a genotype must be a JSON object with keys " + ", ".join(KEYS))
    missing = [key for key in KEYS if key not in data]
    if missing:
        raise UserError(f"genotype is missing {', '.join(missing)}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise UserError(f"genotype has unknown key(s) {', '.join(map(str, unknown))}")
    if not isinstance(data["space"], str) or not data["space"]:
        raise UserError("genotype space must be a non-empty string")
    if len(data["space"]) > TITLE_CHARS:
        raise UserError(
            f"genotype space has {len(data['space']):,} characters, at most {TITLE_CHARS} (it is "
            "text that ends up in the generated file)"
        )
    return Genotype(
        normal=_gene(data["normal"], "normal"),
        normal_concat=_concat(data["normal_concat"], "normal"),
        reduce=_gene(data["reduce"], "reduce"),
        reduce_concat=_concat(data["reduce_concat"], "reduce"),
        space=data["space"],
    )


def _darts(normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> Genotype:
    """A DARTS genotype from its flat (op, input) list, two entries per node."""

    def nodes(flat: list[tuple[str, int]]) -> Gene:
        return tuple(tuple(flat[i : i + 2]) for i in range(0, len(flat), 2))

    return Genotype(nodes(normal), (2, 3, 4, 5), nodes(reduce), (2, 3, 4, 5), "darts")


GENOTYPES: dict[str, Genotype] = {
    # quark0/darts genotypes.py: DARTS_V1 (first order) and DARTS_V2 (second order, "DARTS").
    "darts_v1": _darts(
        [
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 2),
        ],
        [
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("avg_pool_3x3", 0),
        ],
    ),
    "darts_v2": _darts(
        [
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("skip_connect", 0),
            ("dil_conv_3x3", 2),
        ],
        [
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
        ],
    ),
}


def load_genotype(spec: str | Path) -> Genotype:
    """A built-in genotype name (`darts_v2`) or a genotype.json file (or a run directory holding one)."""
    text = str(spec)
    if text in GENOTYPES:
        return GENOTYPES[text]
    path = Path(text)
    if path.is_dir():
        path = path / "genotype.json"
    if not path.is_file():
        raise UserError(
            f"{text!r} is neither a built-in genotype ({', '.join(GENOTYPES)}) nor a genotype JSON file"
        )
    size = path.stat().st_size
    if size > GENOTYPE_BYTES:
        raise UserError(
            f"{str(path)!r} has {size:,} bytes, more than a genotype can need "
            f"({GENOTYPE_BYTES:,}: {NAS_NODES.high:g} nodes of {NAS_NODE_INPUTS.high:g} inputs "
            "take about 100 KB)"
        )
    data = read_json(path, GENOTYPE_BYTES)  # UserError naming the file if it is damaged
    return genotype_of(data, str(path))


def genotype_of(data: object, where: str) -> Genotype:
    """from_json(data), its UserError naming the file `where` the data came from."""
    try:
        return from_json(data)
    except UserError as exc:
        raise UserError(f"{where!r}: {exc}") from None


__all__ = [
    "GENOTYPES",
    "Gene",
    "Genotype",
    "check_cell",
    "from_json",
    "genotype_of",
    "load_genotype",
]
