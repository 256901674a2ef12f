"""Initial architecture parameters: zero (SCIS), DARTS's 1e-3·randn, HB initialisation, algorithm init.

- zero (default, SCIS §9.3 "zero initialization for α and β"): every op of an edge weighs 1/|O|.
- randn: DARTS's `1e-3 * randn` (quark0/darts model_search.py).
- HB initialisation (SCIS §9.1, `--hb-init`) on the heavy-ball space (15): ō₂ (the βz_k edge from
  x_{t−1}) starts on identity, ō (the edge from x_{t−2}) on negative identity, ō₁ (the T-edge) from
  random α, so the initial cell computes x_t = F(x_{t−1}) + x_{t−1} − x_{t−2}, SCIS (18): HBNet's
  β₁ = 1, β₂ = −1 of (C1).
- Algorithm initialisation (`--algo-init`): every state edge starts at its algorithm's own fixed
  coefficient c (heavy ball: +β on x_{t−1}, −β on x_{t−2}; the triple momentum method: its z_k
  coefficient), represented inside the edge's softmax as w_skip = (1 + c)/2, w_neg = (1 − c)/2 so
  that w_skip·x − w_neg·x = c·x; T-edges start from random α as ō₁ does. `--hb-init` is
  `--algo-init` with c = +1, −1 on the heavy-ball space.

A softmax of finite logits is never exactly one-hot, so the chosen mixture gets total weight
`weight` (default 0.99) and the remaining ops share 1 − weight equally: α = log p, p the target
weights (softmax(log p) = p). At 0.99 the margin between a one-hot choice and each other op of 9 is
log(0.99·8/0.01) ≈ 6.7 logits. Adam moves a logit by about lr per step, so a full search (50 epochs
× 390 steps × 3e-4 ≈ 5.9 per logit, up to twice that between two logits moving apart) can undo it;
a short one cannot. A weight near 1 (the tests use 1 − 10⁻¹² in float64) makes the initial cell
compute (18) to ~1e-10.

Not representable, hence refused: a coefficient with |c| > 1 (one softmax's ±identity mixture has
|w_skip − w_neg| ≤ 1), a coefficient that varies with the iteration (Nesterov's β_k, the history
sums: that is what the AGD space's p_it learn instead; its zero β — uniform p_it — is the paper's
start, and as the next cell's ReLU-conv-BN preprocessing normalises a cell's output scale, equal
coefficients need nothing more), and a space without state edges (nothing to start at).
"""

from __future__ import annotations

import math

import torch

from derive.errors import UserError
from derive.nas.spaces import STATE_ROLE, T_ROLE, SearchSpace, coefficient_weights

ALPHA_INITS = ("zero", "randn")
STARTS = ("hb", "algo")
RANDOM_STD = 1e-3  # DARTS's 1e-3·randn, also SCIS's "randomly initialized" ō₁ under HB init
HB_SHAPE = ((0, T_ROLE), (0, STATE_ROLE), (1, STATE_ROLE))


def start_name(hb_init: bool, algo_init: bool) -> str | None:
    """The start `--hb-init` / `--algo-init` ask for: "hb", "algo" or None; UserError for both."""
    if hb_init and algo_init:
        raise UserError("--hb-init and --algo-init exclude each other")
    return "hb" if hb_init else "algo" if algo_init else None


def start_coefficients(space: SearchSpace, start: str) -> dict[int, float]:
    """{edge kind: coefficient c} the state edges start at; UserError where it cannot be represented."""
    if start == "hb":
        shape = tuple((kind.lag, kind.role) for kind in space.kinds)
        if space.normalised or shape != HB_SHAPE:
            raise UserError(
                f"--hb-init needs the heavy-ball space of SCIS (15) (edges T(x_t−1), x_t−1, x_t−2); "
                f"{space.name!r} has other edges: use --algo-init for its own coefficients"
            )
        return {1: 1.0, 2: -1.0}
    if start != "algo":
        raise ValueError(start)
    if space.normalised or space.algorithm is None:
        raise UserError(
            f"--algo-init: the {space.name!r} space relaxes its coefficients into learnable edge "
            "weights (p_it, or DARTS's free α), so there is no fixed coefficient to start at; "
            "its zero init (uniform p_it) is the paper's start"
        )
    found: dict[int, float] = {}
    for index, kind in enumerate(space.kinds):
        if kind.role != STATE_ROLE:
            continue
        if kind.value is None:
            raise UserError(
                f"--algo-init: the {space.name!r} space's state edge {kind.term} has a coefficient "
                f"that varies with the iteration ({kind.coefficient}), not a fixed one to start at"
            )
        try:
            coefficient_weights(kind.value)
        except UserError as exc:
            raise UserError(f"--algo-init: edge {kind.term} of {space.name!r}: {exc}") from None
        found[index] = kind.value
    if not found:
        raise UserError(
            f"--algo-init: the {space.name!r} space has no state edges (all its terms are T-terms), "
            "so there is no coefficient to start at"
        )
    return found


def mixture_logits(
    ops: tuple[str, ...], targets: dict[str, float], weight: float, dtype: torch.dtype
) -> torch.Tensor:
    """Logits whose softmax puts `weight`·targets on the target ops and 1 − weight on the rest."""
    chosen = {op: share for op, share in targets.items() if share > 0}
    rest = [op for op in ops if op not in chosen]
    probs = [
        weight * chosen[op] if op in chosen else (1 - weight) / len(rest) if rest else 0.0
        for op in ops
    ]
    if not rest:  # the targets cover every op: their weights are the whole softmax
        total = sum(chosen.values())
        probs = [chosen[op] / total for op in ops]
    return torch.tensor([math.log(p) for p in probs], dtype=dtype)


def initial_alphas(
    space: SearchSpace,
    alpha_init: str = "zero",
    start: str | None = None,
    weight: float = 0.99,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The α of one cell type (edges × ops), drawn from torch's global generator where random,
    in `dtype` (default: torch's default dtype, so a float64 supernet gets exact float64 logits)."""
    dtype = dtype or torch.get_default_dtype()
    if alpha_init not in ALPHA_INITS:
        raise UserError(f"--alpha-init must be one of {', '.join(ALPHA_INITS)}, got {alpha_init!r}")
    if not 0.5 <= weight < 1:
        raise UserError(f"--init-weight must be in [0.5, 1), got {weight}")
    edges = space.cell_edges()
    shape = (len(edges), len(space.ops))
    alpha = (
        torch.zeros(shape, dtype=dtype)
        if alpha_init == "zero"
        else RANDOM_STD * torch.randn(shape, dtype=dtype)
    )
    if start is None:
        return alpha
    coefficients = start_coefficients(space, start)
    missing = [op for op in ("skip_connect", "neg_skip_connect") if op not in space.ops]
    if missing:
        raise UserError(
            f"--{start}-init needs {' and '.join(missing)} among the operations to represent the "
            "state coefficients"
        )
    for row, edge in enumerate(edges):
        if edge.kind in coefficients:
            targets = coefficient_weights(coefficients[edge.kind])
            alpha[row] = mixture_logits(space.ops, targets, weight, dtype)
        else:  # T-edges: SCIS's "randomly initialized" ō₁
            alpha[row] = RANDOM_STD * torch.randn(len(space.ops), dtype=dtype)
    return alpha


def initial_betas(
    space: SearchSpace, alpha_init: str = "zero", dtype: torch.dtype | None = None
) -> torch.Tensor:
    """β of one cell type (one per edge): zero (SCIS) or 1e-3·randn (PC-DARTS)."""
    n, dtype = space.num_edges, dtype or torch.get_default_dtype()
    if alpha_init == "zero":
        return torch.zeros(n, dtype=dtype)
    return RANDOM_STD * torch.randn(n, dtype=dtype)


__all__ = [
    "ALPHA_INITS",
    "STARTS",
    "initial_alphas",
    "initial_betas",
    "mixture_logits",
    "start_coefficients",
]
