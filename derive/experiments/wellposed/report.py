"""simulation_wellposed.md: the networks' test errors against depth beside the optimizers' errors
against iterations, and whether the faster optimizer's network is the better one at equal depth.

Every number comes from runs.csv and study.json; the sentences are templates/simulation_wellposed.md.j2.
Errors are compared on a log scale: for two algorithms A, B at one depth, the paired differences
log10(error_A) − log10(error_B) over the seeds (same teacher and data per seed) give the mean
factor 10^mean, its spread (the standard deviation of the differences) and an exact sign-flip p.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from derive.codegen.templates import render
from derive.experiments.stats import sign_flip_p
from derive.experiments.tables import markdown_table
from derive.experiments.wellposed.charts import plot_errors
from derive.experiments.wellposed.files import Grid, read_runs, read_study
from derive.experiments.wellposed.study import ALGORITHMS, STARTS, RunResult, Setting
from derive.fsutil import atomic_write_text

MARKDOWN = "simulation_wellposed.md"
FIGURE = "simulation_wellposed.png"
ALPHA = 0.05
LABELS = dict(ALGORITHMS)
COMMAND = "derive simulate --task wellposed --out docs/results/simulation_wellposed --resume"


@dataclass(frozen=True)
class Pair:
    """Faster (by the optimizer's own error at this depth) against slower, their networks paired."""

    kappa: float
    start: str
    depth: int
    faster: str
    slower: str
    optimizer_factor: float  # optimizer error of faster / slower (geometric mean over seeds)
    network_factor: float  # test error of faster's network / slower's (geometric mean)
    spread: float | None  # std over seeds of log10 of the network ratio
    p: float | None  # exact sign-flip p of the log ratios

    @property
    def agrees(self) -> bool:
        return self.network_factor < 1


class Runs:
    """runs.csv indexed by (κ, algorithm, depth, start) → {seed: run}."""

    def __init__(self, runs: Sequence[RunResult]) -> None:
        self.cells: dict[tuple, dict[int, RunResult]] = {}
        for r in runs:
            self.cells.setdefault((r.kappa, r.algorithm, r.depth, r.start), {})[r.seed] = r

    def seeds(self, kappa: float, algorithm: str, depth: int, start: str) -> dict[int, RunResult]:
        return self.cells.get((kappa, algorithm, depth, start), {})

    def log_errors(self, kappa: float, algorithm: str, depth: int, start: str, field: str) -> dict:
        """{seed: log10 of the error `field`}; a non-finite or non-positive error is left out."""
        out = {}
        for seed, run in self.seeds(kappa, algorithm, depth, start).items():
            value = getattr(run, field)
            if math.isfinite(value) and value > 0:
                out[seed] = math.log10(value)
        return out

    def geometric(self, kappa: float, algorithm: str, depth: int, start: str, field: str):
        logs = list(self.log_errors(kappa, algorithm, depth, start, field).values())
        return 10 ** statistics.fmean(logs) if logs else None


def compare(runs: Runs, kappa: float, start: str, depth: int, a: str, b: str) -> Pair | None:
    """The pair (a, b) ordered by their optimizers' errors at `depth`; None without common seeds."""
    opt_a = runs.log_errors(kappa, a, depth, "teacher", "optimizer_error")
    opt_b = runs.log_errors(kappa, b, depth, "teacher", "optimizer_error")
    net_a = runs.log_errors(kappa, a, depth, start, "test_error")
    net_b = runs.log_errors(kappa, b, depth, start, "test_error")
    seeds = sorted(set(opt_a) & set(opt_b) & set(net_a) & set(net_b))
    if not seeds:
        return None
    opt = statistics.fmean(opt_a[s] - opt_b[s] for s in seeds)
    if opt > 0:
        a, b, opt_a, opt_b, net_a, net_b = b, a, opt_b, opt_a, net_b, net_a
        opt = -opt
    diffs = [net_a[s] - net_b[s] for s in seeds]
    spread = statistics.stdev(diffs) if len(diffs) > 1 else None
    return Pair(
        kappa,
        start,
        depth,
        a,
        b,
        10**opt,
        10 ** statistics.fmean(diffs),
        spread,
        sign_flip_p(diffs),
    )


def all_pairs(runs: Runs, grid: Grid) -> list[Pair]:
    """Every pair of algorithms at every κ, start and depth (ties of the optimizers left out)."""
    out = []
    for kappa, start, depth in itertools.product(grid.kappas, STARTS, grid.depths):
        for a, b in itertools.combinations(grid.algorithms, 2):
            pair = compare(runs, kappa, start, depth, a, b)
            if pair is not None and pair.optimizer_factor < 0.99:
                out.append(pair)
    return out


@dataclass(frozen=True)
class Tally:
    """How the pairs of one κ and start came out."""

    kappa: float
    start: str
    pairs: int
    agree: int  # the faster optimizer's network has the lower test error
    significant_agree: int  # ... and p < ALPHA
    significant_disagree: int  # the slower optimizer's network is better, p < ALPHA
    median_factor: float  # median over pairs of the network error ratio faster / slower
    low_factor: float  # its 10th and 90th percentiles over pairs
    high_factor: float

    @property
    def holds(self) -> bool:
        """The fixed rule for 'the faster optimizer's network is better' at this κ and start."""
        return self.agree >= 0.75 * self.pairs and self.significant_agree > 3 * max(
            1, self.significant_disagree
        )


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation of the sorted values."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def tally(pairs: Sequence[Pair], kappa: float, start: str) -> Tally | None:
    chosen = [p for p in pairs if p.kappa == kappa and p.start == start]
    if not chosen:
        return None
    significant = [p for p in chosen if p.p is not None and p.p < ALPHA]
    factors = [p.network_factor for p in chosen]
    return Tally(
        kappa,
        start,
        len(chosen),
        sum(p.agrees for p in chosen),
        sum(p.agrees for p in significant),
        sum(not p.agrees for p in significant),
        quantile(factors, 0.5),
        quantile(factors, 0.1),
        quantile(factors, 0.9),
    )


def flips(pairs: Sequence[Pair], runs: Runs, grid: Grid, kappa: float, start: str) -> dict:
    """Where the ordering flips: depths at which the fastest optimizer's network is not the best
    network, and depths at which AGD's network is worse than GD's."""
    fastest_not_best = []
    for depth in grid.depths:
        optimizer = {
            a: runs.geometric(kappa, a, depth, "teacher", "optimizer_error")
            for a in grid.algorithms
        }
        network = {a: runs.geometric(kappa, a, depth, start, "test_error") for a in grid.algorithms}
        if None in optimizer.values() or None in network.values():
            continue
        first, second = sorted(optimizer.values())[:2]
        if first > 0.99 * second:
            continue  # no single fastest optimizer (depth 1: one gradient step for most)
        fastest = min(optimizer, key=optimizer.__getitem__)
        best = min(network, key=network.__getitem__)
        if fastest != best:
            fastest_not_best.append(
                f"{depth} ({LABELS[fastest]} fastest, {LABELS[best]}'s network best)"
            )
    agd_worse = [
        p.depth
        for p in pairs
        if p.kappa == kappa
        and p.start == start
        and {p.faster, p.slower} == {"nesterov", "gd"}
        and (p.network_factor > 1) == (p.faster == "nesterov")
    ]
    return {"fastest_not_best": fastest_not_best, "agd_worse": agd_worse}


def sci(value: float | None) -> str:
    """1.2e-03 style, '—' for no value."""
    return "—" if value is None else f"{value:.1e}"


def factor(value: float) -> str:
    """A ratio of errors: 0.31 or 2.4e+03."""
    return f"{value:.2g}" if 1e-3 <= value < 1e3 else f"{value:.1e}"


def error_table(runs: Runs, grid: Grid, kappa: float, start: str, field: str) -> list[str]:
    """Markdown lines: depth, then the geometric-mean error of each algorithm over the seeds."""
    head = ["depth", *(LABELS[a] for a in grid.algorithms)]
    rows = [
        [str(depth), *(sci(runs.geometric(kappa, a, depth, start, field)) for a in grid.algorithms)]
        for depth in grid.depths
    ]
    return markdown_table(head, rows, align="r" * len(head))


HEADLINE = ("κ", "depth", "optimizer", "network, teacher start", "network, random start")


def headline_rows(pairs: Sequence[Pair], grid: Grid) -> list[str]:
    """Markdown lines of AGD against GD at each depth: optimizer ratio, network ratios ± spread
    and p per start."""
    rows: list[list[str]] = []
    for kappa in grid.kappas:
        for depth in grid.depths:
            cells = [f"{kappa:g}", str(depth)]
            for start in STARTS:
                found = [
                    p
                    for p in pairs
                    if (p.kappa, p.start, p.depth) == (kappa, start, depth)
                    and {p.faster, p.slower} == {"nesterov", "gd"}
                ]
                if not found:
                    cells += ["—", "—"] if start == "teacher" else ["—"]
                    continue
                p = found[0]
                sign = 1 if p.faster == "nesterov" else -1
                if start == "teacher":
                    cells.append(factor(p.optimizer_factor**sign))
                spread = "—" if p.spread is None else f"{p.spread:.2f}"
                p_text = "—" if p.p is None else f"{p.p:.3f}"
                cells.append(f"{factor(p.network_factor**sign)} (± {spread} dex, p = {p_text})")
            rows.append(cells)
    return markdown_table(HEADLINE, rows, align="r" * len(HEADLINE))


def context(runs_list: Sequence[RunResult], setting: Setting, grid: Grid) -> dict[str, object]:
    """Everything the template prints."""
    runs = Runs(runs_list)
    pairs = all_pairs(runs, grid)
    tallies = [t for k in grid.kappas for s in STARTS if (t := tally(pairs, k, s)) is not None]
    seeds = sorted({r.seed for r in runs_list})
    holds = {
        s: bool(ts) and all(t.holds for t in ts)
        for s in STARTS
        for ts in [[t for t in tallies if t.start == s]]
    }
    return {
        "setting": setting,
        "grid": grid,
        "labels": [LABELS[a] for a in grid.algorithms],
        "runs": len(runs_list),
        "planned": len(grid.keys()),
        "seeds": len(seeds),
        "min_p": 2 / 2 ** len(seeds) if seeds else None,
        "alpha": ALPHA,
        "command": COMMAND,
        "figure": FIGURE,
        "tables": [
            {
                "kappa": f"{kappa:g}",
                "optimizer": error_table(runs, grid, kappa, "teacher", "optimizer_error"),
                "teacher": error_table(runs, grid, kappa, "teacher", "test_error"),
                "random": error_table(runs, grid, kappa, "random", "test_error"),
                "flips": {s: flips(pairs, runs, grid, kappa, s) for s in STARTS},
            }
            for kappa in grid.kappas
        ],
        "headline": headline_rows(pairs, grid),
        "tallies": tallies,
        "factor": factor,
        "holds": holds,
        "diverged": [
            f"{LABELS[r.algorithm]} at depth {r.depth} (κ = {r.kappa:g}, {r.start} start, seed {r.seed})"
            for r in runs_list
            if not (math.isfinite(r.test_error) and r.test_error > 0)
        ],
        "totals": {
            start: {
                "pairs": sum(t.pairs for t in tallies if t.start == start),
                "agree": sum(t.agree for t in tallies if t.start == start),
                "significant_agree": sum(t.significant_agree for t in tallies if t.start == start),
                "significant_disagree": sum(
                    t.significant_disagree for t in tallies if t.start == start
                ),
            }
            for start in STARTS
        },
    }


def build_report(folder: Path) -> str:
    """The Markdown text of the report from folder/study.json and folder/runs.csv."""
    setting, grid = read_study(folder)
    return render("simulation_wellposed.md.j2", **context(read_runs(folder), setting, grid))


def write_report(folder: Path, figure: bool = True) -> Path:
    """Write folder/simulation_wellposed.md (and its figure); return the Markdown's path."""
    text = build_report(folder)
    if figure:
        _, grid = read_study(folder)
        plot_errors(Runs(read_runs(folder)), grid, folder / FIGURE)
    return atomic_write_text(folder / MARKDOWN, text)
