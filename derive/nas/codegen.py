"""`derive nas network`: render a genotype's two cells and DARTS's evaluation network as PyTorch code.

The template `nas_network.py.j2` holds the network (stem, cell stack, auxiliary head, drop-path);
this module prints what depends on the genotype: for each cell its nodes xₜ = Σ op(input) over the
node's genes, the constructor of each operation (the DARTS definitions of `derive.nas.ops`, with
the stride of its edge, in keyword arguments), and which outputs drop-path leaves alone (the
stride-1 identities ±x). The operation classes the cells use are copied from derive/nas/ops.py
into the file, so it needs only torch and the standard library.
"""

from __future__ import annotations

import ast
import json
import keyword
import logging
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import derive.nas.ops
from derive.codegen.generate import GeneratedFile, format_source
from derive.codegen.templates import render
from derive.errors import UserError
from derive.fsutil import atomic_write_text, staged_files
from derive.limits import check_nas_sizes
from derive.nas.genotype import GENOTYPES, Genotype, load_genotype

log = logging.getLogger(__name__)

SUBSCRIPTS = str.maketrans("0123456789-", "₀₁₂₃₄₅₆₇₈₉₋")
CONSTRUCTORS: dict[str, str] = {
    "none": "Zero({stride})",
    "max_pool_3x3": "nn.MaxPool2d(3, stride={stride}, padding=1)",
    "avg_pool_3x3": "nn.AvgPool2d(3, stride={stride}, padding=1, count_include_pad=False)",
    # skip_connect and neg_skip_connect: stride 2 only; at stride 1 they are x and −x themselves
    "skip_connect": "FactorizedReduce(c_in=c, c_out=c, affine=True)",
    "neg_skip_connect": "Negate(FactorizedReduce(c_in=c, c_out=c, affine=True))",
    "sep_conv_3x3": "SepConv(c_in=c, c_out=c, kernel_size=3, stride={stride}, padding=1, affine=True)",
    "sep_conv_5x5": "SepConv(c_in=c, c_out=c, kernel_size=5, stride={stride}, padding=2, affine=True)",
    "dil_conv_3x3": (
        "DilConv(c_in=c, c_out=c, kernel_size=3, stride={stride}, padding=2, dilation=2, affine=True)"
    ),
    "dil_conv_5x5": (
        "DilConv(c_in=c, c_out=c, kernel_size=5, stride={stride}, padding=4, dilation=2, affine=True)"
    ),
}
"""Each operation as derive.nas.ops.make_op(name, c, stride, affine=True) builds it (a test checks)."""
IDENTITIES = ("skip_connect", "neg_skip_connect")


def check_sizes(channels: int, cells: int) -> None:
    """UserError unless the network can be built and is of a sane size (derive.limits.check_nas_sizes,
    the rule `derive nas search` follows too)."""
    check_nas_sizes(channels, cells)


def input_variable(index: int) -> str:
    """The Python name of genotype input `index` inside a cell's forward."""
    return {0: "x_m2", 1: "x_m1"}.get(index, f"x{index - 2}")


def input_label(index: int) -> str:
    """The paper's name of genotype input `index`: c_{k−2}, c_{k−1}, x₀, x₁, …"""
    return {0: "c_{k−2}", 1: "c_{k−1}"}.get(index, "x" + str(index - 2).translate(SUBSCRIPTS))


@dataclass(frozen=True)
class GeneCode:
    """One (operation, input) pair of a node, as printed."""

    attr: str
    op: str
    source: int
    stride: int
    module: bool  # False for the stride-1 identities, which are the input itself (or its negation)
    constructor: str
    term: str  # the summand in forward
    note: str

    @property
    def source_label(self) -> str:
        return input_label(self.source)


@dataclass(frozen=True)
class NodeCode:
    index: int
    genes: tuple[GeneCode, ...]

    @property
    def var(self) -> str:
        return input_variable(self.index + 2)

    @property
    def label(self) -> str:
        return input_label(self.index + 2)

    @property
    def expression(self) -> str:
        text = self.genes[0].term
        for gene in self.genes[1:]:
            text += f" - {gene.term[1:]}" if gene.term.startswith("-") else f" + {gene.term}"
        return text

    @property
    def equation(self) -> str:
        terms = [f"{g.op}({g.source_label})" for g in self.genes]
        return f"{self.label} = " + " + ".join(terms)


@dataclass(frozen=True)
class CellCode:
    class_name: str
    title: str
    reduction: bool
    nodes: tuple[NodeCode, ...]
    concat: tuple[int, ...]

    @property
    def output_vars(self) -> list[str]:
        return [input_variable(i) for i in self.concat]

    @property
    def output_text(self) -> str:
        return "c_k = [" + ", ".join(input_label(i) for i in self.concat) + "], SCIS (14)"

    @property
    def lines(self) -> list[str]:
        stride = " (stride 2 on c_{k−2}, c_{k−1})" if self.reduction else ""
        lines = [node.equation for node in self.nodes]
        return lines + [self.output_text.replace(", SCIS (14)", "") + stride]


def gene_code(node: int, j: int, op: str, source: int, reduction: bool) -> GeneCode:
    """How gene j of node `node` is built and summed (drop-path on all but the stride-1 ±x)."""
    stride = 2 if reduction and source < 2 else 1
    var = input_variable(source)
    attr = f"x{node}_op{j}"
    if op in IDENTITIES and stride == 1:
        sign = "-" if op == "neg_skip_connect" else ""
        kind = "a negative identity" if sign else "an identity"
        note = f"{sign}{var} itself ({kind}: no module, no drop-path)"
        return GeneCode(attr, op, source, stride, False, "", f"{sign}{var}", note)
    constructor = CONSTRUCTORS[op].format(stride=stride)
    return GeneCode(
        attr, op, source, stride, True, constructor, f"drop_path(self.{attr}({var}), p)", ""
    )


def cell_code(genotype: Genotype, reduction: bool) -> CellCode:
    gene, concat = genotype.cell(reduction)
    if reduction and any(i < 2 for i in concat):
        raise UserError(
            "genotype reduce_concat names a cell input (0 or 1): in a reduction cell those are at "
            "twice the resolution of the nodes and cannot be concatenated with them"
        )
    nodes = tuple(
        NodeCode(t, tuple(gene_code(t, j, op, src, reduction) for j, (op, src) in enumerate(pairs)))
        for t, pairs in enumerate(gene)
    )
    if reduction:
        return CellCode("ReductionCell", "reduction cell", True, nodes, concat)
    return CellCode("NormalCell", "normal cell", False, nodes, concat)


OPERATION_CLASSES = ("ReLUConvBN", "DilConv", "SepConv", "Negate", "Zero", "FactorizedReduce")
"""The classes of derive/nas/ops.py a generated file may hold, in the order it defines them."""
NEEDS = {"SepConv": "DilConv"}  # SepConv is built from two DilConv halves


def used_operation_classes(cells: tuple[CellCode, ...]) -> list[str]:
    """The operation classes the cells construct (with those they are built from), in file order."""
    names = {"FactorizedReduce", "ReLUConvBN"}  # the cells' preprocessing
    for cell in cells:
        for node in cell.nodes:
            for gene in node.genes:
                names.update(re.findall(r"\b(\w+)\(", gene.constructor))
    names.update(NEEDS[name] for name in list(names) if name in NEEDS)
    return [name for name in OPERATION_CLASSES if name in names]


@cache
def operation_sources() -> dict[str, str]:
    """The source of each class of OPERATION_CLASSES, as derive/nas/ops.py writes it."""
    path = Path(derive.nas.ops.__file__)
    text = path.read_text(encoding="utf-8")
    classes = {
        node.name: ast.get_source_segment(text, node)
        for node in ast.parse(text).body
        if isinstance(node, ast.ClassDef)
    }
    return {name: str(classes[name]) for name in OPERATION_CLASSES}


def render_nas_network(genotype: Genotype, name: str, channels: int = 36, cells: int = 20) -> str:
    """The formatted source of the evaluation network of `genotype` (defaults: `channels`, `cells`)."""
    check_sizes(channels, cells)
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"network name {name!r} is not a Python identifier")
    normal, reduction = cell_code(genotype, False), cell_code(genotype, True)
    source = render(
        "nas_network.py.j2",
        name=name,
        space_doc=json.dumps(genotype.space, ensure_ascii=False),
        space_literal=repr(genotype.space),
        genotype_literal=repr(genotype.to_json()),
        channels=channels,
        cells=cells,
        reductions=(cells // 3, 2 * cells // 3),
        normal=normal,
        reduction=reduction,
        cell_kinds=(normal, reduction),
        operations=[
            operation_sources()[name] for name in used_operation_classes((normal, reduction))
        ],
    )
    return format_source(source)


def network_name(spec: str | os.PathLike[str]) -> str:
    """The module name for a genotype: a built-in's name, else the file's stem (the run directory's
    name for RUN_DIR/genotype.json or RUN_DIR), made a valid Python identifier."""
    text = str(spec)
    if text in GENOTYPES:
        return text
    path = Path(text)
    if path.is_dir() or path.name == "genotype.json":
        stem = (path if path.is_dir() else path.parent).resolve().name
    else:
        stem = path.stem
    name = re.sub(r"\W", "_", stem, flags=re.ASCII) or "genotype"
    if name[0].isdigit():
        name = f"nas_{name}"
    return f"{name}_" if keyword.iskeyword(name) else name


def generate_nas_network(
    spec: str | os.PathLike[str], channels: int = 36, cells: int = 20
) -> GeneratedFile:
    """`<name>.py` for a built-in genotype name, a genotype.json file or a run directory."""
    check_sizes(channels, cells)
    genotype = load_genotype(spec)
    name = network_name(spec)
    return GeneratedFile(f"{name}.py", render_nas_network(genotype, name, channels, cells))


def write_nas_network(
    spec: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    channels: int = 36,
    cells: int = 20,
) -> Path:
    """Generate (every check first), then write `out_dir/<name>.py` atomically."""
    generated = generate_nas_network(spec, channels, cells)
    with staged_files(out_dir) as stage:
        atomic_write_text(stage / generated.filename, generated.source)
    path = Path(out_dir) / generated.filename
    log.info("wrote %s", path)
    return path


__all__ = [
    "CONSTRUCTORS",
    "check_sizes",
    "generate_nas_network",
    "network_name",
    "render_nas_network",
    "write_nas_network",
]
