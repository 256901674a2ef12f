"""The built-in algorithms, each stated once in x-space as the papers print it (SCIS numbering).

Unit step size throughout (SCIS footnote 3: f is scaled so that ∇f is 1-Lipschitz).
"""

from __future__ import annotations

import sympy as sp

from derive.algorithms.schedules import Schedule
from derive.algorithms.spec import (
    Algorithm,
    Coefficient,
    Constant,
    ImplicitSchedule,
    Objective,
    SpecialCase,
    Stream,
    Update,
)
from derive.algorithms.symbols import GRAD, INNER, SQNORM, j, k, scalar, vector

x, y, lam, xi = vector("x"), vector("y"), vector("lam"), vector("xi")
beta, kappa = scalar("beta"), scalar("kappa")
theta = sp.Function("theta")
h = sp.Function("h")
nag_beta = sp.Function("nag_beta")

_THETA = ImplicitSchedule(
    "theta",
    relation=(1 - theta(k)) / theta(k) ** 2 - 1 / theta(k - 1) ** 2,
    initial={0: sp.Integer(1)},
    symbol="θ",
    doc="(1 − θ_k)/θ_k² = 1/θ_{k−1}², θ_0 = 1 (SCIS (3))",
)

_NAG_BETA = Schedule(
    "nag_beta",
    rule=theta(k) * (1 - theta(k - 1)) / theta(k - 1),
    start=1,
    initial={0: sp.Integer(0)},
    symbol="β",
    doc="β_k = θ_k(1 − θ_{k−1})/θ_{k−1} (SCIS (11)); β_0 multiplies x_0 − x_{−1} = 0 and is set to 0",
)

# (5) states h_{k+1,j} from h_{k,j} with the factor θ_{k+1}(1 − θ_k)/θ_k, which is β_{k+1} of (11);
# here the same rule gives row k from row k − 1, so the factor is β_k.
_H = Schedule(
    "h",
    rule=sp.Piecewise(
        (nag_beta(k) * h(k - 1, j), j <= k - 3),
        (nag_beta(k) * (h(k - 1, j) - 1), sp.Eq(j, k - 2)),
        (1 + nag_beta(k), True),
    ),
    start=1,
    two_index=True,
    symbol="h",
    doc="h_{k+1,j} of SCIS (5); its factor θ_{k+1}(1 − θ_k)/θ_k is β_{k+1} of (11)",
)

_KAPPA = Coefficient(
    "kappa",
    sp.Integer(10),
    "κ",
    "condition number L/μ of f (L = 1 after scaling)",
    minimum=1.0,
    strict_minimum=True,
)


GD = Algorithm(
    name="gd",
    title="Gradient descent",
    reference="Bertsekas, Nonlinear Programming (1999)",
    equation="SCIS (1)",
    streams=(Stream("x", "z", "z"),),
    updates=(Update("x", x(k) - GRAD(x(k))),),
    output=x(k),
    z_equation="SCIS (7)",
    rate="O((L/μ) log(1/ε)) iterations",
    special_cases=(SpecialCase("plain CNN", "Wz → convolution (T = conv-BN-ReLU-conv-BN)"),),
)

HEAVY_BALL = Algorithm(
    name="heavyball",
    title="Heavy ball",
    reference="Polyak, USSR Comput. Math. Math. Phys. 4(5) (1964)",
    equation="SCIS (2)",
    streams=(Stream("x", "z", "z"),),
    updates=(Update("x", x(k) - GRAD(x(k)) + beta * (x(k) - x(k - 1))),),
    output=x(k),
    initial=((x(-1), x(0)),),
    coefficients=(
        Coefficient(
            "beta",
            sp.Rational(3, 10),
            "β",
            "momentum (0.3 in the simulation, SCIS B.3)",
            minimum=-1.0,
            maximum=1.0,
        ),
    ),
    z_equation="SCIS (10)",
    rate="O(√(L/μ) log(1/ε)) iterations (local, for suitable β)",
    engineering="lagged",
    special_cases=(
        SpecialCase("ResNet", "β₁ = 1, β₂ = 0 in (C1)"),
        SpecialCase("HBNet", "β₁ = 1, β₂ = −1 in (C1) (SCIS C.1)"),
    ),
)

NESTEROV = Algorithm(
    name="nesterov",
    title="Nesterov's accelerated gradient (AGD)",
    reference="Nesterov, Soviet Math. Dokl. 27(2) (1983)",
    equation="SCIS (3)",
    streams=(Stream("x", "z", "z"),),
    lets=((y(k), x(k) + nag_beta(k) * (x(k) - x(k - 1))),),
    updates=(Update("x", y(k) - GRAD(y(k))),),
    output=x(k),
    initial=((x(-1), x(0)),),
    schedules=(_THETA, _NAG_BETA),
    z_equation="SCIS (11)",
    rate="O(√(L/μ) log(1/ε)) iterations; O(1/k²) for convex f",
    engineering="lagged",
    special_cases=(SpecialCase("(C2)", "z_{k+1} = T(β₁z_k + β₂z_{k−1})"),),
)

NESTEROV_ALL_HISTORY = Algorithm(
    name="nesterov2",
    title="AGD, all-history form",
    reference="SCIS (4)-(5); equivalent to (3) in exact arithmetic",
    equation="SCIS (4)-(5)",
    streams=(Stream("y", "z", "z"),),
    updates=(Update("y", y(k) - sp.Sum(h(k + 1, j) * GRAD(y(j)), (j, 0, k))),),
    output=y(k),
    schedules=(_THETA, _NAG_BETA, _H),
    z_equation="SCIS (12)",
    rate="as (3)",
    engineering="dense",
    special_cases=(
        SpecialCase("DenseNet", "β = 0, α = 1 in (C3)"),
        SpecialCase("AGDNet", "learnable α, h from (5), β = 0.1 in (C6) (SCIS C.2)"),
    ),
)

_v = sp.Symbol("v", commutative=False)
ADMM = Algorithm(
    name="admm",
    title="Linearized ADMM (penalty 1)",
    reference="Lin, Liu, Su, NIPS (2011); min f(x) + f(y) s.t. y − x = 0",
    equation="SCIS (6)",
    streams=(Stream("x", "zp", "z'"), Stream("y", "z", "z"), Stream("lam", "mu", "μ", "λ")),
    updates=(
        Update(
            "x",
            argmin=Objective(
                _v,
                INNER(GRAD(x(k)), _v)
                + SQNORM(_v - x(k)) / 2
                + INNER(lam(k), _v)
                + SQNORM(_v - y(k)) / 2,
            ),
        ),
        Update(
            "y",
            argmin=Objective(
                _v,
                INNER(GRAD(y(k)), _v)
                + SQNORM(_v - y(k)) / 2
                - INNER(lam(k), _v)
                + SQNORM(x(k + 1) - _v) / 2,
            ),
        ),
        Update("lam", lam(k) + (x(k + 1) - y(k + 1))),
    ),
    output=y(k),
    initial=((y(0), x(0)), (lam(0), sp.Integer(0))),
    z_equation="SCIS (13)",
    rate="O(1/k) ergodic; no acceleration over GD",
    engineering="c5",
    special_cases=(SpecialCase("DMRNet", "α_k = β_k = ½ in (C5)"),),
    notes=(
        "The network output is the y path (the papers' z of (13)); x₀ = y₀ = the input, λ₀ = 0.",
    ),
)

NESTEROV_STRONGLY_CONVEX = Algorithm(
    name="nesterov_sc",
    title="Nesterov's method, constant momentum (strongly convex f)",
    reference="Nesterov, Introductory Lectures on Convex Optimization (2004), scheme 2.2.19",
    equation="y_k = x_k + β(x_k − x_{k−1}), x_{k+1} = y_k − ∇f(y_k), β = (√κ − 1)/(√κ + 1)",
    streams=(Stream("x", "z", "z"),),
    lets=((y(k), x(k) + beta * (x(k) - x(k - 1))),),
    updates=(Update("x", y(k) - GRAD(y(k))),),
    output=x(k),
    initial=((x(-1), x(0)),),
    coefficients=(_KAPPA,),
    constants=(
        Constant("beta", (sp.sqrt(kappa) - 1) / (sp.sqrt(kappa) + 1), "β", "(√κ − 1)/(√κ + 1)"),
    ),
    rate="f(x_k) − f* ≤ C (1 − 1/√κ)^k",
)

rho, t_alpha, t_beta, t_gamma, t_delta = (
    scalar(n) for n in ("rho", "tmm_alpha", "tmm_beta", "tmm_gamma", "tmm_delta")
)
TRIPLE_MOMENTUM = Algorithm(
    name="triple_momentum",
    title="Triple momentum method",
    reference="Van Scoy, Freeman, Lynch, IEEE Control Systems Letters 2(1) (2018)",
    equation="ξ_{k+1} = (1+β)ξ_k − βξ_{k−1} − α∇f(y_k), y_k = (1+γ)ξ_k − γξ_{k−1}, "
    "x_k = (1+δ)ξ_k − δξ_{k−1}; ρ = 1 − 1/√κ, α = (1+ρ)/L, β = ρ²/(2−ρ), "
    "γ = ρ²/((1+ρ)(2−ρ)), δ = ρ²/(1−ρ²)",
    streams=(Stream("xi", "z", "z", "ξ"),),
    lets=((y(k), (1 + t_gamma) * xi(k) - t_gamma * xi(k - 1)),),
    updates=(Update("xi", (1 + t_beta) * xi(k) - t_beta * xi(k - 1) - t_alpha * GRAD(y(k))),),
    output=(1 + t_delta) * xi(k) - t_delta * xi(k - 1),
    initial=((xi(-1), xi(0)),),
    coefficients=(_KAPPA,),
    constants=(
        Constant("rho", 1 - 1 / sp.sqrt(kappa), "ρ", "1 − 1/√κ"),
        Constant("tmm_alpha", 1 + rho, "α", "(1 + ρ)/L, L = 1"),
        Constant("tmm_beta", rho**2 / (2 - rho), "β", "ρ²/(2 − ρ)"),
        Constant("tmm_gamma", rho**2 / ((1 + rho) * (2 - rho)), "γ", "ρ²/((1 + ρ)(2 − ρ))"),
        Constant("tmm_delta", rho**2 / (1 - rho**2), "δ", "ρ²/(1 − ρ²)"),
    ),
    rate="‖x_k − x*‖ ≤ C (1 − 1/√κ)^k, the fastest known for smooth strongly convex f",
)

m, v = vector("m"), vector("v")
nu = scalar("nu")
QHM = Algorithm(
    name="qhm",
    title="Quasi-hyperbolic momentum (QHM)",
    reference="Ma, Yarats, ICLR (2019)",
    equation="Ma & Yarats (2019), the QHM update rule",
    streams=(Stream("x", "z", "z"), Stream("m", "zm", "zₘ", "m")),
    updates=(
        Update("m", beta * m(k) + (1 - beta) * GRAD(x(k))),
        Update("x", x(k) - ((1 - nu) * GRAD(x(k)) + nu * m(k + 1))),
    ),
    output=x(k),
    initial=((m(0), sp.Integer(0)),),
    coefficients=(
        Coefficient(
            "beta",
            sp.Rational(9, 10),
            "β",
            "momentum of the gradient average m (Ma & Yarats recommend 0.999 for long runs)",
            minimum=0.0,
            maximum=1.0,
        ),
        Coefficient(
            "nu",
            sp.Rational(7, 10),
            "ν",
            "weight of the average against the plain gradient (0.7, Ma & Yarats' default)",
            minimum=0.0,
            maximum=1.0,
        ),
    ),
    rate="as heavy ball for suitable β, ν (ν = 1: heavy ball with step 1 − β; ν = 0: GD)",
    notes=(
        "Two streams, x and the gradient average m (m₀ = 0); the network reads out x. The same "
        "iteration with one state reads gradients at xₖ and xₖ₋₁, and its conv block reuses the "
        "previous block's T output, so it also costs one T per block.",
    ),
)

EXTRAGRADIENT = Algorithm(
    name="extragradient",
    title="Extragradient method",
    reference="Korpelevich, Ekonomika i Matematicheskie Metody 12 (1976)",
    equation="yₖ₊₁ = xₖ − ∇f(xₖ), xₖ₊₁ = xₖ − ∇f(yₖ₊₁)",
    streams=(Stream("x", "z", "z"), Stream("y", "zy", "z_y", "y")),
    updates=(
        Update("y", x(k) - GRAD(x(k))),
        Update("x", x(k) - GRAD(y(k + 1))),
    ),
    output=x(k),
    rate="O((L/μ) log(1/ε)) iterations; converges for monotone variational inequalities",
    notes=(
        "The extrapolated point y is a stream computed first in each step; the gradient at it is "
        "T applied to this block's new y, a second T per block.",
    ),
)

HEAVY_BALL_VELOCITY = Algorithm(
    name="heavyball_velocity",
    title="Heavy ball, written with a velocity",
    reference="Polyak (1964), in the form of Sutskever et al., ICML (2013), eqs. (1)-(2)",
    equation="vₖ₊₁ = βvₖ − ∇f(xₖ), xₖ₊₁ = xₖ + vₖ₊₁, v₀ = 0",
    streams=(Stream("x", "z", "z"), Stream("v", "zv", "zᵥ", "v")),
    updates=(
        Update("v", beta * v(k) - GRAD(x(k))),
        Update("x", x(k) + v(k + 1)),
    ),
    output=x(k),
    initial=((v(0), sp.Integer(0)),),
    coefficients=HEAVY_BALL.coefficients,
    rate="as heavy ball (the same iterates: vₖ = xₖ − xₖ₋₁)",
    special_cases=(
        SpecialCase("HBNet", "β = 1 without ρ: (C1) with β₁ = 1, β₂ = −1, block for block"),
    ),
    notes=(
        "The same iterates as heavy ball (vₖ = xₖ − xₖ₋₁); without ρ its conv network equals "
        "(C1)'s with β₁ = β, β₂ = −β, block for block.",
    ),
)

BUILTIN: dict[str, Algorithm] = {
    a.name: a
    for a in (
        GD,
        HEAVY_BALL,
        NESTEROV,
        NESTEROV_ALL_HISTORY,
        ADMM,
        NESTEROV_STRONGLY_CONVEX,
        TRIPLE_MOMENTUM,
        QHM,
        EXTRAGRADIENT,
        HEAVY_BALL_VELOCITY,
    )
}

ALIASES = {
    "hb": "heavyball",
    "agd": "nesterov",
    "agd2": "nesterov2",
    "tmm": "triple_momentum",
    "eg": "extragradient",
    "hbv": "heavyball_velocity",
}
