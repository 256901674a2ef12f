"""The evaluation network of a genotype: generated code that needs only torch, DARTS's parameter
counts, forward shapes, the auxiliary head, drop-path, and `derive nas network` with its bad inputs."""

from __future__ import annotations

import ast
import json
import linecache
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from format_check import is_formatted
from train_fixtures import single_thread  # noqa: F401

from derive.cli import main
from derive.errors import UserError
from derive.models.stats import count_parameters
from derive.nas import GENOTYPES, build_network, build_supernet, from_json, ops
from derive.nas.codegen import generate_nas_network, network_name, render_nas_network
from derive.nas.network import network_module
from derive.nas.ops import OP_NAMES, FactorizedReduce, ReLUConvBN, is_identity, make_op

# A heavy-ball-like genotype: three genes per node, two of them on the same input (x_{t−1}),
# negative identities, and a concat that leaves a node out and (normal cell) takes an input.
HB = from_json(
    {
        "space": "heavyball",
        "normal": [
            [["sep_conv_3x3", 1], ["skip_connect", 1], ["neg_skip_connect", 0]],
            [["dil_conv_3x3", 2], ["skip_connect", 2], ["neg_skip_connect", 1]],
            [["avg_pool_3x3", 3], ["sep_conv_5x5", 3], ["neg_skip_connect", 2]],
            [["max_pool_3x3", 4], ["dil_conv_5x5", 4], ["none", 3]],
        ],
        "normal_concat": [1, 2, 3, 5],
        "reduce": [
            [["skip_connect", 1], ["neg_skip_connect", 1], ["neg_skip_connect", 0]],
            [["sep_conv_3x3", 2], ["max_pool_3x3", 2], ["sep_conv_5x5", 1]],
            [["skip_connect", 3], ["none", 3], ["dil_conv_3x3", 0]],
        ],
        "reduce_concat": [2, 3, 4],
    }
)


# --- DARTS's numbers (the logs of quark0/darts and of P-DARTS) ------------------------------------


@pytest.fixture(scope="module")
def v2_aux() -> torch.nn.Module:
    """DARTS V2 at its published size with the auxiliary head (read, never changed, by the tests)."""
    return build_network("darts_v2", auxiliary=True)


def test_darts_parameter_counts_are_exact(v2_aux: torch.nn.Module) -> None:
    v2 = build_network("darts_v2")
    v1 = build_network("darts_v1", channels=36, cells=20)
    assert count_parameters(v2) == 3_349_342
    assert count_parameters(v1) == 3_169_414
    assert count_parameters(v2_aux) - count_parameters(v2) == 476_426
    # DARTS's count_parameters_in_MB: every parameter whose name lacks "auxiliary"
    without = sum(p.numel() for n, p in v2_aux.named_parameters() if "auxiliary" not in n)
    assert without == 3_349_342


def test_darts_network_shape(v2_aux: torch.nn.Module) -> None:
    net = v2_aux
    kinds = [type(cell).__name__ for cell in net.cells]
    assert [i for i, k in enumerate(kinds) if k == "ReductionCell"] == [6, 13]
    for i, cell in enumerate(net.cells):  # c_{k−2} is at twice the resolution after a reduction
        after_reduction = i - 1 in (6, 13)
        # the file defines its own copies of derive.nas.ops's classes: compare by name
        expected = FactorizedReduce if after_reduction else ReLUConvBN
        assert type(cell.preprocess0).__name__ == expected.__name__
    assert net.stem[0].out_channels == 108
    assert net.auxiliary_head.features[2].in_channels == 576  # C_prev after cell 13
    assert net.classifier.in_features == 576
    assert isinstance(net.auxiliary_head.features[0], torch.nn.ReLU)
    assert not net.auxiliary_head.features[0].inplace  # DARTS's is in place on the main path
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(bn.affine for bn in bns)


# --- the generated code -------------------------------------------------------------------------


def test_generated_source_is_deterministic_formatted_and_cites_the_papers() -> None:
    first = generate_nas_network("darts_v2", 36, 20)
    assert first.filename == "darts_v2.py"
    assert first.source == generate_nas_network("darts_v2", 36, 20).source
    assert is_formatted(first.source)
    docstring = ast.get_docstring(ast.parse(first.source)) or ""
    for citation in ("SCIS (14)", "§9.3", "DARTS", "Liu et al., ICLR 2019"):
        assert citation in docstring
    assert "x₃ = skip_connect(c_{k−2}) + dil_conv_3x3(x₀)" in docstring
    assert "x3 = x_m2 + drop_path(self.x3_op1(x0), p)" in first.source
    module = network_module("darts_v2", 36, 20)
    assert from_json(module.GENOTYPE) == GENOTYPES["darts_v2"]
    assert (module.NAME, module.SPACE, module.CHANNELS, module.CELLS) == (
        "darts_v2",
        "darts",
        36,
        20,
    )


def test_build_network_runs_the_generated_code() -> None:
    net = build_network("darts_v1", channels=6, cells=4)
    module = sys.modules[type(net).__module__]
    filename = module.__file__
    assert "".join(linecache.getlines(filename)) == generate_nas_network("darts_v1", 6, 4).source
    assert module.CHANNELS == 6 and module.CELLS == 4


def test_a_hostile_space_name_stays_a_string() -> None:
    data = HB.to_json()
    data["space"] = 'x"""\nimport os  # \\ \' end\x00\u2028'
    source = render_nas_network(from_json(data), "hostile", 4, 3)
    tree = ast.parse(source)
    assert not any(
        isinstance(node, ast.Import) and node.names[0].name == "os" for node in tree.body
    )
    # the docstring (through the templates' `doc` filter) reads back the space as JSON, exactly
    first_line = ast.get_docstring(tree, clean=False).split("\n")[0]
    assert first_line == (
        "The evaluation network of the searched genotype hostile (search space "
        f"{json.dumps(data['space'], ensure_ascii=False)})."
    )
    module = network_module(from_json(data), 4, 3, name="hostile")
    assert module.SPACE == data["space"]
    assert module.GENOTYPE["space"] == data["space"]


def test_every_operation_is_built_as_make_op_builds_it() -> None:
    net = build_network(HB, channels=4, cells=3)
    seen = set()
    for cell in net.cells:
        c = cell.preprocess1.op[1].out_channels
        gene, _ = HB.cell(cell.reduction)
        for t, pairs in enumerate(gene):
            for j, (op, source) in enumerate(pairs):
                stride = 2 if cell.reduction and source < 2 else 1
                reference = make_op(op, c, stride, affine=True)
                module = getattr(cell, f"x{t}_op{j}", None)
                if is_identity(reference):
                    assert module is None, (op, stride)  # written as ±x in forward
                else:
                    assert repr(module) == repr(reference), (op, stride)
                seen.add((op, stride))
    assert {op for op, _ in seen} == set(OP_NAMES)
    assert ("skip_connect", 2) in seen and ("neg_skip_connect", 2) in seen


def _reference_cell(cell, genotype, s0, s1):
    """A cell's output from its own modules, wired from the genotype by this test (eval mode)."""
    gene, concat = genotype.cell(cell.reduction)
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    for t, pairs in enumerate(gene):
        total = 0
        for j, (op, source) in enumerate(pairs):
            x = states[source]
            if op == "skip_connect" and getattr(cell, f"x{t}_op{j}", None) is None:
                total = total + x
            elif op == "neg_skip_connect" and getattr(cell, f"x{t}_op{j}", None) is None:
                total = total - x
            else:
                total = total + getattr(cell, f"x{t}_op{j}")(x)
        states.append(total)
    return torch.cat([states[i] for i in concat], dim=1)


def test_cells_compute_their_genotype() -> None:
    torch.manual_seed(0)
    net = build_network(HB, channels=4, cells=4, num_classes=7).eval()
    x = torch.randn(3, 3, 32, 32)
    s0 = s1 = net.stem(x)
    with torch.no_grad():
        for cell in net.cells:
            out = cell(s0, s1)
            assert torch.equal(out, _reference_cell(cell, HB, s0, s1))
            s0, s1 = s1, out
        assert net(x).shape == (3, 7)
    assert "x₀ = sep_conv_3x3(c_{k−1}) + skip_connect(c_{k−1}) + neg_skip_connect(c_{k−2})" in (
        render_nas_network(HB, "hb", 4, 4)
    )


@pytest.mark.parametrize("num_classes", [10, 100])
def test_forward_shapes_and_the_auxiliary_head_only_in_training(num_classes: int) -> None:
    x = torch.randn(2, 3, 32, 32)
    net = build_network("darts_v2", channels=4, cells=3, num_classes=num_classes, auxiliary=True)
    net.train()
    logits, aux = net(x)
    assert logits.shape == aux.shape == (2, num_classes)
    net.eval()
    assert net(x).shape == (2, num_classes)
    plain = build_network("darts_v2", channels=4, cells=3, num_classes=num_classes).train()
    assert isinstance(plain(x), torch.Tensor) and plain.auxiliary_head is None


def test_odd_channels_are_refused_as_in_the_search() -> None:
    for channels in (5, 7):
        with pytest.raises(UserError, match="even .a factorized reduction splits"):
            build_network("darts_v2", channels=channels, cells=6)
        with pytest.raises(UserError, match="even"):
            build_supernet("darts", channels=channels, cells=6)
    # the generated file refuses them on its own too (it may be used without derive's checks)
    module = network_module("darts_v2", 6, 3)
    with pytest.raises(ValueError, match="even channels"):
        module.create_model(10, channels=5)
    net = build_network("darts_v2", channels=6, cells=6)
    reduces = [m for m in net.modules() if type(m).__name__ == FactorizedReduce.__name__]
    assert reduces and all(m.bn.num_features % 2 == 0 for m in reduces)


# --- a file that needs only torch ---------------------------------------------------------------

TORCH_ONLY = """
import importlib, sys
sys.path += [sys.argv[1], sys.argv[2]]  # torch's site-packages, the file's folder: nothing else
try:
    import derive
except ImportError:
    pass
else:
    raise SystemExit("derive is importable: the check proves nothing")
import torch
net = importlib.import_module(sys.argv[3]).create_model(5, channels=4, cells=3).eval()
with torch.no_grad():
    print(tuple(net(torch.randn(2, 3, 16, 16)).shape), sorted(m for m in sys.modules if "derive" in m))
"""


def test_a_written_file_runs_with_torch_alone(tmp_path) -> None:
    written = generate_nas_network(hb_genotype_file(tmp_path), 4, 3)
    source = written.source
    tree = ast.parse(source)
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    assert imported <= {"__future__", "torch"}, imported
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / written.filename).write_text(source, encoding="utf-8")
    site_packages = str(Path(torch.__file__).parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-I", "-S", "-c", TORCH_ONLY, site_packages, str(alone), "hb"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(2,", "5)", "[]"]


def hb_genotype_file(folder: Path) -> Path:
    """HB as a genotype.json named hb.json (so the written file is hb.py)."""
    path = folder / "hb.json"
    path.write_text(HB.dumps(), encoding="utf-8")
    return path


def _with_derive_ops(module):
    """A copy of the generated module's namespace whose operation classes are derive.nas.ops's."""
    names = ("ReLUConvBN", "DilConv", "SepConv", "Negate", "Zero", "FactorizedReduce")
    return {name: getattr(ops, name) for name in names if hasattr(module, name)}


@pytest.mark.parametrize("genotype", ["darts_v2", "darts_v1", "hb"])
def test_copied_operations_build_what_derive_nas_ops_builds(genotype, monkeypatch) -> None:
    """The same module tree, state_dict keys, parameters and initial weights for a seed, and the
    same outputs, as the network built with derive.nas.ops's own classes."""
    spec = HB if genotype == "hb" else genotype
    module = network_module(spec, 6, 4)
    assert all(getattr(module, name) is not getattr(ops, name) for name in _with_derive_ops(module))
    torch.manual_seed(11)
    generated = module.create_model(7, auxiliary=True).eval()
    for name, cls in _with_derive_ops(module).items():
        monkeypatch.setattr(module, name, cls)
    torch.manual_seed(11)
    reference = module.create_model(7, auxiliary=True).eval()
    assert any(isinstance(m, ops.ReLUConvBN) for m in reference.modules())
    assert repr(generated) == repr(reference)
    ours, theirs = generated.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    assert count_parameters(generated) == count_parameters(reference)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(generated(x), reference(x))


# --- drop-path ----------------------------------------------------------------------------------


def test_drop_path_matches_darts_with_a_mask_per_sample() -> None:
    drop_path = network_module("darts_v2", 36, 20).drop_path
    x = torch.randn(4000, 2, 3, 3)
    torch.manual_seed(7)
    out = drop_path(x, 0.3)
    torch.manual_seed(7)  # DARTS utils.drop_path, in place on a copy
    mask = torch.FloatTensor(x.size(0), 1, 1, 1).bernoulli_(0.7)
    reference = x.clone().div_(0.7).mul_(mask)
    assert torch.equal(out, reference)
    kept = (out != 0).flatten(1).all(1)
    dropped = (out == 0).flatten(1).all(1)
    assert torch.all(kept | dropped)  # whole samples, never single channels or pixels
    assert abs(dropped.double().mean().item() - 0.3) < 4 * (0.3 * 0.7 / 4000) ** 0.5
    assert torch.allclose(out[kept], x[kept] / 0.7)
    assert drop_path(x, 0.0) is x


def _per_sample(out: torch.Tensor, full: torch.Tensor, p: float) -> tuple[int, int]:
    """(dropped, kept) samples, asserting each is exactly 0 or full/(1 − p)."""
    dropped = kept = 0
    for o, f in zip(out, full, strict=True):
        if torch.all(o == 0):
            dropped += 1
        else:
            assert torch.allclose(o, f / (1 - p), atol=1e-6)
            kept += 1
    return dropped, kept


def test_drop_path_in_cells_spares_the_identities_only() -> None:
    genotype = from_json(
        {
            "space": "test",
            "normal": [
                [["skip_connect", 1], ["neg_skip_connect", 0]],
                [["sep_conv_3x3", 2]],
            ],
            "normal_concat": [2, 3],
            "reduce": [[["skip_connect", 0]], [["neg_skip_connect", 2]]],
            "reduce_concat": [2, 3],
        }
    )
    torch.manual_seed(1)
    net = build_network(genotype, channels=4, cells=3).train()
    normal, reduction = net.cells[0], net.cells[1]
    s = torch.randn(64, 12, 16, 16)
    p = 0.5
    with torch.no_grad():
        out = normal(s, s, p)
        identities = normal.preprocess1(s) - normal.preprocess0(s)
        assert torch.equal(out[:, :4], identities)  # x₀ = x₋₁ − x₋₂: never dropped
        dropped, kept = _per_sample(out[:, 4:], normal.x1_op0(identities), p)
        assert dropped and kept
        # a stride-2 skip_connect is a FactorizedReduce: dropped like any operation
        r0, r1 = torch.randn(64, 12, 16, 16), torch.randn(64, 8, 16, 16)  # stem, normal cell
        out = reduction(r0, r1, p)
        full = reduction.x0_op0(reduction.preprocess0(r0))
        dropped, kept = _per_sample(out[:, :8], full, p)
        assert dropped and kept
        assert torch.equal(out[:, 8:], -out[:, :8])  # −x₀ at stride 1: never dropped
        normal.eval()
        assert torch.equal(normal(s, s, p), normal(s, s, 0.0))  # only in training


# --- bad input ----------------------------------------------------------------------------------


def test_sizes_and_reduction_concat_are_checked() -> None:
    for channels, cells, message in [
        (36, 2, "cells must be at least 3 .the reduction cells"),
        (0, 20, "channels must be between 2 and 256"),
        (258, 20, "channels must be between 2 and 256"),
        (36, 101, "cells must be between 3 and 100"),
        (35, 20, "channels must be even"),
        (True, 20, "integer"),
        (36, 20.0, "integer"),
    ]:
        with pytest.raises(UserError, match=message):
            build_network("darts_v2", channels=channels, cells=cells)
    data = GENOTYPES["darts_v2"].to_json()
    data["reduce_concat"] = [1, 2, 3, 4, 5]
    with pytest.raises(UserError, match="reduce_concat names a cell input"):
        build_network(from_json(data), channels=4, cells=3)


def test_network_names(tmp_path) -> None:
    run = tmp_path / "hb-run.1"
    run.mkdir()
    (run / "genotype.json").write_text(HB.dumps())
    (tmp_path / "3 cells.json").write_text(HB.dumps())
    (tmp_path / "class.json").write_text(HB.dumps())
    assert network_name("darts_v1") == "darts_v1"
    assert network_name(run / "genotype.json") == "hb_run_1"
    assert network_name(run) == "hb_run_1"
    assert network_name(tmp_path / "3 cells.json") == "nas_3_cells"
    assert network_name(tmp_path / "class.json") == "class_"


def test_cli_writes_the_module_and_logs_its_path(tmp_path, capsys, caplog) -> None:
    out = tmp_path / "nets"
    assert (
        main(["nas", "network", "darts_v2", "--out", str(out), "--channels", "8", "--cells", "5"])
        == 0
    )
    path = out / "darts_v2.py"
    assert capsys.readouterr().out == ""
    assert f"wrote {path}" in caplog.messages  # as `derive network` logs it (stderr, INFO)
    assert path.read_text() == generate_nas_network("darts_v2", 8, 5).source
    assert sorted(p.name for p in out.iterdir()) == ["darts_v2.py"]
    run = tmp_path / "my run"
    run.mkdir()
    (run / "genotype.json").write_text(HB.dumps())
    assert main(["nas", "network", str(run / "genotype.json"), "--out", str(out)]) == 0
    assert (out / "my_run.py").is_file()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: g["normal"].pop(), "names node 5"),  # a node is missing
        (lambda g: g["reduce"].clear(), "no nodes"),
        (lambda g: g["normal"][1].__setitem__(0, ["conv_3x3", 0]), "unknown operation"),
        (lambda g: g["normal"][0].__setitem__(1, ["sep_conv_3x3", 2]), "reads input 2"),
        (lambda g: g.pop("normal_concat"), "missing normal_concat"),
    ],
)
def test_cli_refuses_malformed_genotypes_and_writes_nothing(
    tmp_path, capsys, edit, message
) -> None:
    data = GENOTYPES["darts_v2"].to_json()
    edit(data)
    path = tmp_path / "genotype.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "nets"
    assert main(["nas", "network", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cells", "2"], "reduction cells"),
        (["--channels", "0"], "even integer >= 2"),
        (["--channels", "300"], "at most 256"),
        (["--channels", "35"], "factorized reduction splits its output channels"),
        (["--cells", "x"], "integer >= 3"),
    ],
)
def test_cli_refuses_impossible_sizes(tmp_path, capsys, options, message) -> None:
    out = tmp_path / "nets"
    assert main(["nas", "network", "darts_v2", "--out", str(out), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("command", ["search", "network"])
def test_search_and_network_share_the_size_options(capsys, command) -> None:
    from derive.limits import NAS_CELLS, NAS_CHANNELS

    with pytest.raises(SystemExit):
        main(["nas", command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"at most 256: {NAS_CHANNELS.reason}" in text and "at most 100:" in text
    assert NAS_CELLS.high == 100 and NAS_CHANNELS.high == 256
    assert "even: a factorized reduction splits its output channels into two halves" in text
