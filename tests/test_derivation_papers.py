"""The derived z-space recurrences equal the papers' printed equations SCIS (7), (10)–(13).

The printed equations are typed here from the papers, as test data; the derivation never sees them.
"""

from __future__ import annotations

import sympy as sp

from derive.algorithms import get_algorithm, recurrence_of
from derive.algorithms.ir import unroll_accumulators
from derive.algorithms.symbols import T, j, k, vector

z, zp = vector("z"), vector("zp")
beta = sp.Symbol("beta", real=True)
theta = sp.Function("theta")
h = sp.Function("h")


def derived(name: str) -> list[sp.Expr]:
    return [u.to_sympy() for u in recurrence_of(get_algorithm(name)).updates]


def same(a: sp.Expr, b: sp.Expr) -> bool:
    return sp.expand(a - b) == 0


def explicit(expr: sp.Expr, kk: int) -> sp.Expr:
    """Substitute k = kk and write every Σ_j out term by term."""
    return sp.expand(expr.subs(k, kk).doit())


def test_gd_gives_scis_7() -> None:
    (update,) = derived("gd")
    assert same(update, T(z(k)))  # (7): z_{k+1} = Φ(W z_k)


def test_heavy_ball_gives_scis_10() -> None:
    (update,) = derived("heavyball")
    assert same(update, T(z(k)) + beta * (z(k) - z(k - 1)))  # (10)


def test_nesterov_gives_scis_11() -> None:
    (update,) = derived("nesterov")
    beta_k = theta(k) * (1 - theta(k - 1)) / theta(k - 1)  # (11): β_k = θ_k(1 − θ_{k−1})/θ_{k−1}
    printed = T(z(k) + beta_k * (z(k) - z(k - 1)))
    nag = get_algorithm("nesterov").resolved_schedules()[1]
    update = update.replace(sp.Function("nag_beta"), lambda a: nag.rule.subs(k, a))
    ours, theirs = update.args[0], printed.args[0]
    assert update.func == T and same(ours, theirs)


def test_nesterov_all_history_gives_scis_12() -> None:
    (update,) = derived("nesterov2")
    printed = (
        sp.Sum(h(k + 1, j) * T(z(j)), (j, 0, k)) + z(k) - sp.Sum(h(k + 1, j) * z(j), (j, 0, k))
    )  # (12)
    for kk in range(6):
        assert explicit(update, kk) == explicit(printed, kk)


def test_admm_gives_scis_13() -> None:
    recurrence = unroll_accumulators(recurrence_of(get_algorithm("admm")))
    first, second = (u.to_sympy() for u in recurrence.updates)
    acc = sp.Sum(zp(j) - z(j), (j, 1, k))
    printed_first = (T(zp(k)) + z(k) - acc) / 2  # (13), z'_{k+1}
    printed_second = (T(z(k)) + zp(k + 1) + acc) / 2  # (13), z_{k+1}
    for kk in range(6):
        assert explicit(first, kk) == explicit(printed_first, kk)
        assert explicit(second, kk) == explicit(printed_second, kk)


def test_a_wrong_printed_equation_is_told_apart() -> None:
    """The comparison can fail: a sign slip in (10) is not accepted."""
    (update,) = derived("heavyball")
    assert not same(update, T(z(k)) + beta * (z(k) + z(k - 1)))


def test_all_history_form_reproduces_nesterov_for_any_momenta() -> None:
    """(4)–(5) and (3) give the same y_k for every momentum sequence β_1, β_2, … (exact algebra).

    (5)'s factor θ_{k+1}(1 − θ_k)/θ_k is β_{k+1}, so free symbols b_k stand for it. (3) is unrolled
    here by hand in terms of abstract gradients g_j = ∇f(y_j): x_{k+1} = y_k − g_k,
    y_{k+1} = x_{k+1} + b_{k+1}(x_{k+1} − x_k), y_0 = x_0.
    """
    steps = 6
    b = sp.symbols(f"b0:{steps + 2}")
    g = sp.symbols(f"g0:{steps + 1}")
    y0 = sp.Symbol("y0")
    x = [y0]
    y = [y0]
    for kk in range(steps):
        x.append(y[kk] - g[kk])
        y.append(x[kk + 1] + b[kk + 1] * (x[kk + 1] - x[kk]))
    rule = get_algorithm("nesterov2").resolved_schedules()[2].rule  # h(k, j), the rule of (5)
    rows: dict[int, list[sp.Expr]] = {}
    for kk in range(1, steps + 1):
        row = []
        for jj in range(kk):
            value = (
                rule.subs({k: kk, j: jj})
                .replace(h, lambda a, c: rows[int(a)][int(c)])
                .replace(sp.Function("nag_beta"), lambda a: b[int(a)])
            )
            row.append(value)
        rows[kk] = row
    y_all = [y0]
    for kk in range(steps):
        y_all.append(y_all[kk] - sum(rows[kk + 1][jj] * g[jj] for jj in range(kk + 1)))
    for kk in range(steps + 1):
        assert sp.expand(y_all[kk] - y[kk]) == 0


def test_theta_solves_the_papers_relation_exactly() -> None:
    """θ_k from the derived rule satisfies (1 − θ_k)/θ_k² = 1/θ_{k−1}², θ_0 = 1."""
    from derive.algorithms.schedules import ScheduleTable

    recurrence = recurrence_of(get_algorithm("nesterov"))
    table = ScheduleTable(recurrence.schedules, {}, exact=True)
    assert table.value("theta", 0) == 1
    assert sp.simplify(table.value("theta", 1) - (sp.sqrt(5) - 1) / 2) == 0
    for kk in range(1, 6):  # exact nested radicals, evaluated to 60 digits
        t, t_prev = table.value("theta", kk), table.value("theta", kk - 1)
        assert abs(sp.N((1 - t) / t**2 - 1 / t_prev**2, 60)) < 1e-50
        assert 0 < float(t) < 1


def test_h_first_column_vanishes_so_dense_blocks_never_mix_channels() -> None:
    from derive.algorithms.schedules import ScheduleTable

    recurrence = recurrence_of(get_algorithm("nesterov2"))
    table = ScheduleTable(recurrence.schedules, {}, exact=True)
    assert table.value("h", 1, 0) == 1
    assert all(table.value("h", kk, 0) == 0 for kk in range(2, 7))
    numeric = ScheduleTable(recurrence.schedules, {}, exact=False, dps=30)
    assert all(abs(numeric.value("h", kk, 0)) < 1e-25 for kk in range(2, 30))
