"""Piecewise structure on the real line: split an expression in x into cells (intervals) and branches.

Abs, Max, Min, sign and Heaviside are rewritten as Piecewise first, so every kink is a branch
point. Cells are sorted left to right and cover the real line (up to finitely many points).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from itertools import pairwise

import sympy as sp

from derive.errors import UserError
from derive.symbolic.symbols import x

_KINKED = (sp.Abs, sp.Max, sp.Min, sp.sign, sp.Heaviside)


@dataclass(frozen=True)
class Cell:
    """One branch: `expr` holds on the open interval (lo, hi)."""

    lo: sp.Expr
    hi: sp.Expr
    expr: sp.Expr

    def interior_point(self) -> sp.Expr:
        """A point inside the cell (exact): the midpoint, or 1 away from the finite end."""
        if self.lo.is_infinite and self.hi.is_infinite:
            return sp.Integer(0)
        if self.lo.is_infinite:
            return self.hi - 1
        if self.hi.is_infinite:
            return self.lo + 1
        return (self.lo + self.hi) / 2

    def anchor(self) -> sp.Expr:
        """The point of the closed cell nearest to 0."""
        if (self.lo.is_infinite or self.lo <= 0) and (self.hi.is_infinite or self.hi >= 0):
            return sp.Integer(0)
        return self.lo if self.lo > 0 else self.hi

    def contains(self, value: float, margin: float = 0.0) -> bool:
        lo_ok = self.lo.is_infinite or value > float(self.lo) + margin
        hi_ok = self.hi.is_infinite or value < float(self.hi) - margin
        return lo_ok and hi_ok

    def samples(
        self, rng: random.Random, count: int, margin: float, spread: float = 8.0
    ) -> list[float]:
        """`count` random points at least `margin` inside the cell, mostly within `spread` of its ends."""
        points = []
        for _ in range(count):
            if self.lo.is_infinite and self.hi.is_infinite:
                points.append(rng.uniform(-spread, spread))
            elif self.lo.is_infinite:
                points.append(float(self.hi) - margin - rng.uniform(0, spread))
            elif self.hi.is_infinite:
                points.append(float(self.lo) + margin + rng.uniform(0, spread))
            else:
                points.append(rng.uniform(float(self.lo) + margin, float(self.hi) - margin))
        return points

    def far_points(self, distances: tuple[float, ...]) -> list[float]:
        """Large-magnitude points of an unbounded cell (empty for a bounded one)."""
        points = []
        if self.hi.is_infinite:
            base = 0.0 if self.lo.is_infinite else float(self.lo)
            points += [base + d for d in distances]
        if self.lo.is_infinite:
            base = 0.0 if self.hi.is_infinite else float(self.hi)
            points += [base - d for d in distances]
        return points


@dataclass(frozen=True)
class Branching:
    """An expression split into cells; `conditions` keeps the original Piecewise conditions
    (one per cell, in the original order) when they map one-to-one onto the cells."""

    cells: tuple[Cell, ...]
    conditions: tuple[tuple[int, sp.Basic], ...] | None

    @property
    def breakpoints(self) -> list[sp.Expr]:
        return [cell.hi for cell in self.cells[:-1]]

    @property
    def is_piecewise(self) -> bool:
        return len(self.cells) > 1

    def cell_at(self, value: sp.Expr) -> Cell:
        """The cell whose open interval contains `value` (an interior point, never a breakpoint)."""
        for cell in self.cells:
            if (cell.lo.is_infinite or cell.lo < value) and (
                cell.hi.is_infinite or value < cell.hi
            ):
                return cell
        raise ValueError(f"{value} is a breakpoint or outside every cell")

    def assemble(self, exprs: list[sp.Expr]) -> sp.Expr:
        """A Piecewise with one expression per cell, reusing the original conditions when possible."""
        if len(exprs) == 1:
            return exprs[0]
        if self.conditions is not None:
            pairs = [(exprs[index], cond) for index, cond in self.conditions]
        else:
            pairs = [
                (expr, x <= cell.hi) for expr, cell in zip(exprs[:-1], self.cells[:-1], strict=True)
            ]
            pairs.append((exprs[-1], sp.true))
        pairs[-1] = (pairs[-1][0], sp.true)
        return sp.Piecewise(*pairs)


def normalise(expr: sp.Expr) -> sp.Expr:
    """Rewrite kinked functions (Abs, Max, Min, sign, Heaviside) as a top-level Piecewise."""
    if expr.has(*_KINKED):
        expr = expr.replace(lambda e: isinstance(e, _KINKED), lambda e: e.rewrite(sp.Piecewise))
    if expr.has(sp.Piecewise):
        expr = sp.piecewise_fold(expr)
    return expr


def _intervals(region: sp.Set, what: str) -> list[sp.Interval]:
    if region is sp.S.EmptySet or isinstance(region, sp.FiniteSet):
        return []
    if isinstance(region, sp.Interval):
        return [region]
    if isinstance(region, sp.Union):
        return [iv for part in region.args for iv in _intervals(part, what)]
    raise UserError(f"{what}: cannot split the conditions into finitely many intervals ({region})")


@functools.lru_cache(maxsize=512)
def split(expr: sp.Expr, what: str = "activation") -> Branching:
    """Split `expr` (in x) into cells covering the real line (memoised: a pure function)."""
    expr = normalise(expr)
    if not isinstance(expr, sp.Piecewise):
        if expr.has(sp.Piecewise):
            raise UserError(f"{what}: cannot bring the Piecewise parts to the top level")
        return Branching((Cell(-sp.oo, sp.oo, expr),), None)
    covered: sp.Set = sp.S.EmptySet
    raw: list[tuple[int, sp.Interval, sp.Expr]] = []
    points_only = False  # some branch holds on isolated points only (dropped: Ψ ignores points)
    for index, (branch, cond) in enumerate(expr.args):
        if cond.free_symbols - {x}:
            raise UserError(f"{what}: Piecewise conditions may only involve x ({cond})")
        try:
            region = sp.S.Reals if cond is sp.true else cond.as_set().intersect(sp.S.Reals)
        except (NotImplementedError, TypeError, ValueError):
            raise UserError(f"{what}: cannot solve the condition {cond} on the real line") from None
        effective = region - covered
        covered = covered | region
        intervals = _intervals(effective, what)
        points_only |= not intervals and effective is not sp.S.EmptySet
        raw.extend((index, interval, branch) for interval in intervals)
    gaps = sp.S.Reals - covered
    if gaps is not sp.S.EmptySet:
        raise UserError(f"{what}: the Piecewise does not cover the real line (missing {gaps})")
    raw.sort(key=lambda item: (item[1].start, item[1].end))
    cells = tuple(Cell(iv.start, iv.end, branch) for _, iv, branch in raw)
    for left, right in pairwise(cells):
        if left.hi != right.lo:
            raise UserError(f"{what}: overlapping or missing branches near {left.hi}")
    merged = _merge_equal(cells)
    indices = [index for index, _, _ in raw]
    conditions = None
    exact_cover = not points_only
    if exact_cover and len(set(indices)) == len(indices) and len(merged) == len(cells):
        order = sorted(range(len(raw)), key=lambda k: indices[k])
        conditions = tuple((k, expr.args[indices[k]].cond) for k in order)
    return Branching(merged, conditions)


def _merge_equal(cells: tuple[Cell, ...]) -> tuple[Cell, ...]:
    """Merge neighbouring cells that carry the same expression."""
    merged: list[Cell] = []
    for cell in cells:
        if merged and merged[-1].expr == cell.expr:
            merged[-1] = Cell(merged[-1].lo, cell.hi, cell.expr)
        else:
            merged.append(cell)
    return tuple(merged)


def refine(first: Branching, second: Branching) -> list[tuple[Cell, Cell]]:
    """Common refinement: for each interval between the union of breakpoints, the two cells."""
    points = sorted(set(first.breakpoints) | set(second.breakpoints), key=float)
    edges = [-sp.oo, *points, sp.oo]
    pairs = []
    for lo, hi in pairwise(edges):
        probe = Cell(lo, hi, sp.Integer(0)).interior_point()
        a, b = first.cell_at(probe), second.cell_at(probe)
        pairs.append((Cell(lo, hi, a.expr), Cell(lo, hi, b.expr)))
    return pairs


def combine(first: Branching, second: Branching) -> Branching:
    """`first`'s expressions on the common refinement (all branch points of both)."""
    return Branching(tuple(a for a, _ in refine(first, second)), None)
