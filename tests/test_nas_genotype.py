"""Genotype JSON validation and the candidate operations' shapes (SCIS Table 3)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from derive.errors import UserError
from derive.nas import GENOTYPES, from_json, load_genotype
from derive.nas.ops import OP_NAMES, make_op, make_search_op


def test_builtin_genotypes_round_trip_through_json() -> None:
    for name, genotype in GENOTYPES.items():
        assert from_json(json.loads(genotype.dumps())) == genotype, name


def test_darts_v2_as_published() -> None:
    v2 = GENOTYPES["darts_v2"].to_json()
    assert v2["normal"][3] == [["skip_connect", 0], ["dil_conv_3x3", 2]]
    assert v2["reduce"][0] == [["max_pool_3x3", 0], ["max_pool_3x3", 1]]
    assert v2["normal_concat"] == v2["reduce_concat"] == [2, 3, 4, 5]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: g.pop("reduce"), "missing reduce"),
        (lambda g: g["normal"].pop(), "names node 5"),  # concat names a node that is gone
        (lambda g: g["normal"][0].__setitem__(0, ["conv_7x7", 0]), "unknown operation"),
        (lambda g: g["normal"][0].__setitem__(0, ["sep_conv_3x3", 2]), "reads input 2"),
        (lambda g: g["reduce"][1].__setitem__(1, ["skip_connect", -1]), "reads input -1"),
        (lambda g: g["normal"][2].__setitem__(0, ["skip_connect", True]), "integer"),
        (lambda g: g["normal"][2].__setitem__(0, "skip_connect"), "expected [op, input]"),
        (lambda g: g.__setitem__("space", 3), "space"),
        (lambda g: g.__setitem__("extra", 1), "unknown key"),
        (lambda g: g["normal"].__setitem__(1, []), "no inputs"),
        (lambda g: g.__setitem__("space", "x" * 201), "at most 200"),
        (lambda g: g["normal"][0].extend([["skip_connect", 0]] * 63), "at most 64"),
        (lambda g: g["normal"].extend([[["skip_connect", 0]]] * 29), "at most 32"),
    ],
)
def test_malformed_genotypes_are_refused(edit, message: str) -> None:
    data = copy.deepcopy(GENOTYPES["darts_v2"].to_json())
    edit(data)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_json(data)


def test_load_genotype_names_files_and_errors(tmp_path) -> None:
    assert load_genotype("darts_v1") is GENOTYPES["darts_v1"]
    path = tmp_path / "genotype.json"
    path.write_text(GENOTYPES["darts_v1"].dumps())
    assert load_genotype(path) == GENOTYPES["darts_v1"]
    assert load_genotype(tmp_path) == GENOTYPES["darts_v1"]  # a run directory
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_genotype(path)
    with pytest.raises(UserError, match="neither a built-in"):
        load_genotype(tmp_path / "missing.json")
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="nests too deeply"):
        load_genotype(path)
    path.write_text(" " * 1_000_001)
    with pytest.raises(UserError, match="more than a genotype can need"):
        load_genotype(path)


@pytest.mark.parametrize("name", OP_NAMES)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_operation_keeps_channels_and_scales_resolution(name: str, stride: int) -> None:
    x = torch.randn(2, 8, 8, 8)
    for op in (make_op(name, 8, stride, affine=True), make_search_op(name, 8, stride)):
        assert tuple(op(x).shape) == (2, 8, 8 // stride, 8 // stride)


def test_negative_identity_negates_identity_at_both_strides() -> None:
    x = torch.randn(2, 8, 8, 8)
    assert torch.equal(make_op("neg_skip_connect", 8, 1, True)(x), -x)
    skip = make_op("skip_connect", 8, 2, True).eval()
    neg = make_op("neg_skip_connect", 8, 2, True).eval()
    neg.op.load_state_dict(skip.state_dict())  # same factorized reduce weights
    assert torch.allclose(neg(x), -skip(x))


def test_zero_is_zero_and_search_pools_end_in_a_plain_batchnorm() -> None:
    x = torch.randn(2, 8, 8, 8)
    assert not make_op("none", 8, 2, True)(x).any()
    pool = make_search_op("avg_pool_3x3", 8, 1)
    assert isinstance(pool[-1], torch.nn.BatchNorm2d) and not pool[-1].affine


def test_odd_channels_on_a_reduction_edge_are_a_user_error() -> None:
    with pytest.raises(UserError, match="even channel count"):
        make_op("skip_connect", 7, 2, True)
