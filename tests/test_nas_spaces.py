"""Search spaces derived from recurrences: the paper's spaces (SCIS (15), (19), (20)-(21)) and others."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp

from derive.errors import UserError
from derive.nas.ops import OP_NAMES
from derive.nas.spaces import (
    DARTS_OPS,
    KEEP_EACH,
    KEEP_TOP2,
    MERGED_ROLE,
    STATE_ROLE,
    T_ROLE,
    resolve_space,
)

QUARK0_PRIMITIVES = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]


def edges(space) -> list[tuple[int, int, str]]:
    """(node, input, role) of every cell edge."""
    return [(e.node, e.source, space.kinds[e.kind].role) for e in space.cell_edges()]


def test_darts_space_is_every_predecessor_with_the_darts_ops() -> None:
    space = resolve_space("darts")
    assert list(space.ops) == QUARK0_PRIMITIVES == list(DARTS_OPS)
    # quark0/darts model_search.py: for i in range(steps): for j in range(2 + i): MixedOp
    expected = [(i, j) for i in range(4) for j in range(2 + i)]
    assert [(n, s) for n, s, _ in edges(space)] == expected
    assert space.num_edges == 14 and not space.normalised and space.keep == KEEP_TOP2


@pytest.mark.parametrize("name", ["heavyball", "hb"])
def test_heavy_ball_gives_scis_15(name: str) -> None:
    """x_t = ō₁(x_{t−1}) + ō₂(x_{t−1}) + ō(x_{t−2}); x_{t−1} is input t + 1, x_{t−2} input t."""
    space = resolve_space(name)
    assert space.name == "heavyball" and space.ops == OP_NAMES and len(space.ops) == 9
    expected = []
    for t in range(4):
        expected += [(t, t + 1, T_ROLE), (t, t + 1, STATE_ROLE), (t, t, STATE_ROLE)]
    assert edges(space) == expected
    beta = sp.Symbol("beta", real=True)
    t_kind, s0, s1 = space.kinds
    assert (t_kind.lag, s0.lag, s1.lag) == (0, 0, 1)
    assert sp.simplify(t_kind.coefficient - 1) == 0
    assert sp.simplify(s0.coefficient - beta) == 0 and sp.simplify(s1.coefficient + beta) == 0
    assert (s0.value, s1.value) == (pytest.approx(0.3), pytest.approx(-0.3))  # β = 0.3 (SCIS B.3)
    assert not space.normalised and space.keep == KEEP_EACH


def test_coef_changes_the_fixed_coefficients() -> None:
    space = resolve_space("heavyball", {"beta": 0.5})
    assert [k.value for k in space.kinds] == [1.0, 0.5, -0.5]
    with pytest.raises(UserError, match="beta must be <= 1"):
        resolve_space("heavyball", {"beta": 2.0})


def test_agd_is_the_all_history_agd_with_edge_normalisation() -> None:
    space = resolve_space("agd")
    assert space.algorithm is not None and space.algorithm.name == "nesterov2"
    assert space.ops == OP_NAMES
    assert [(n, s) for n, s, _ in edges(space)] == [(i, j) for i in range(4) for j in range(2 + i)]
    (kind,) = space.kinds
    assert kind.role == MERGED_ROLE and kind.lag is None and kind.coefficient is None
    assert space.normalised and space.keep == KEEP_TOP2
    assert resolve_space("nesterov2").cell_edges() == space.cell_edges()


def test_triple_momentum_drops_its_zero_state_term() -> None:
    """Its z_{k−1} state coefficient is αγ − β = (1+ρ)ρ²/((1+ρ)(2−ρ)) − ρ²/(2−ρ) = 0 exactly."""
    rho = sp.Symbol("rho", positive=True)
    assert sp.simplify((1 + rho) * rho**2 / ((1 + rho) * (2 - rho)) - rho**2 / (2 - rho)) == 0
    space = resolve_space("tmm")
    assert space.name == "triple_momentum"
    assert [(k.lag, k.role) for k in space.kinds] == [(0, T_ROLE), (1, T_ROLE), (0, STATE_ROLE)]
    # by hand at κ = 10: ρ = 1 − 1/√10, α = 1 + ρ, β = ρ²/(2 − ρ), γ = ρ²/((1 + ρ)(2 − ρ))
    r = 1 - 10**-0.5
    a, b, g = 1 + r, r * r / (2 - r), r * r / ((1 + r) * (2 - r))
    t0, t1, state = space.kinds
    assert t0.value == pytest.approx(a * (1 + g)) and t1.value == pytest.approx(-a * g)
    assert state.value == pytest.approx(1 + b - a * (1 + g))
    assert t0.split and t1.split and not state.split


def test_nesterov_t_of_a_combination_splits_into_t_edges() -> None:
    space = resolve_space("nesterov")
    assert [(k.lag, k.role, k.split) for k in space.kinds] == [(0, T_ROLE, True), (1, T_ROLE, True)]
    assert all(k.value is None for k in space.kinds)  # β_k varies with k
    assert edges(space)[:2] == [(0, 1, T_ROLE), (0, 0, T_ROLE)]


def test_gd_is_a_chain_that_never_reads_c_k_minus_2() -> None:
    space = resolve_space("gd")
    assert [(n, s) for n, s, _ in edges(space)] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert not space.reads_input(0)


TWO_MOMENTA = """
name = "two_momenta"
title = "Heavy ball with a second momentum"
states = ["x"]
[coefficients]
beta = 0.3
gamma = { default = 0.1, min = -1, max = 1 }
[let]
"y[k]" = "x[k] + beta*(x[k] - x[k-1])"
[update]
"x[k+1]" = "y[k] - grad(y[k]) + gamma*(x[k-1] - x[k-2])"
[initial]
"x[-1]" = "x[0]"
"x[-2]" = "x[0]"
"""


def test_toml_spec_with_lag_two_uses_the_restart_rule(tmp_path: Path) -> None:
    spec = tmp_path / "two.toml"
    spec.write_text(TWO_MOMENTA, encoding="utf-8")
    space = resolve_space(str(spec))
    assert space.name == "two_momenta"
    # T((1+β)z_k − βz_{k−1}) + γz_{k−1} − γz_{k−2}
    assert [(k.lag, k.role) for k in space.kinds] == [
        (0, T_ROLE),
        (1, T_ROLE),
        (1, STATE_ROLE),
        (2, STATE_ROLE),
    ]
    assert [k.value for k in space.kinds] == pytest.approx([1.3, -0.3, 0.1, -0.1])
    node0 = [s for n, s, _ in edges(space) if n == 0]
    assert node0 == [1, 0, 0, 0]  # x_{−3} does not exist: it reads x_{−2} (z_{−l} = z_0)
    node3 = [s for n, s, _ in edges(space) if n == 3]
    assert node3 == [4, 3, 3, 2]


def test_admm_and_unknown_names_are_refused() -> None:
    with pytest.raises(UserError, match="3 streams"):
        resolve_space("admm")
    with pytest.raises(UserError, match="unknown search space 'nope'"):
        resolve_space("nope")
    with pytest.raises(UserError, match="no algorithm coefficients"):
        resolve_space("darts", {"beta": 0.1})


def test_describe_names_every_edge() -> None:
    text = "\n".join(resolve_space("heavyball").describe())
    assert "x_0 = ō₁(x₋₁) + ō₂(x₋₁) + ō₃(x₋₂)" in text
    assert "coefficient -β = -0.3" in text
    agd = "\n".join(resolve_space("agd").describe())
    assert "p·ō₁(x₋₂)" in agd and "edge normalisation (β, SCIS (21)): yes" in agd
