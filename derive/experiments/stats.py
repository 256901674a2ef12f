"""Small exact statistics shared by the studies: mean ± std, permutation, sign-flip, sign and Fisher tests.

With 10 seeds per arm the samples are small and far from normal (a run either spikes or not), so
the tests are exact and assume nothing about the distribution:
- `permutation_p(a, b)`: two-sided p-value of the difference of means, over every way of splitting
  the pooled values into groups of len(a) and len(b) (184,756 splits for 10 + 10);
- `fisher_p(k1, n1, k2, n2)`: two-sided Fisher exact test of two proportions (e.g. failed runs),
  summing the hypergeometric probabilities of all tables no more likely than the observed one;
- `sign_flip_p_value(d)` / `sign_flip_p(d)` and `sign_test_p_value(d)`: two-sided p-values of paired
  differences (the paired seeds of two models), over every assignment of signs to them, and over the
  count of negative ones against Binomial(m, ½).
"""

from __future__ import annotations

import functools
import itertools
import math
import statistics
from collections.abc import Sequence

import numpy as np

MAX_SPLITS = 2_000_000  # exact enumeration up to this many splits (10 + 10 seeds: 184,756)


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n − 1); (None, None) for no value, std None for one."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


@functools.lru_cache(maxsize=4)
def _splits(n1: int, n2: int) -> np.ndarray:
    """Every choice of n1 of the n1 + n2 pooled indices, one row each, in itertools' order; kept
    (read-only) because a report tests many pairs of arms of the same size."""
    rows = itertools.combinations(range(n1 + n2), n1)
    count = math.comb(n1 + n2, n1) * n1
    splits = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=count)
    splits = splits.reshape(-1, n1)
    splits.flags.writeable = False
    return splits


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Exact two-sided permutation p-value of mean(a) − mean(b); None if a group is empty or too big."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0 or math.comb(n1 + n2, n1) > MAX_SPLITS:
        return None
    pooled = np.asarray(list(a) + list(b), dtype=np.float64)
    total = pooled.sum()
    observed = abs(np.mean(a) - np.mean(b))
    sums = pooled[_splits(n1, n2)].sum(axis=1)
    diffs = np.abs(sums / n1 - (total - sums) / n2)
    # a small tolerance so that the observed split itself always counts despite rounding
    return float(np.mean(diffs >= observed - 1e-12 * max(1.0, abs(observed))))


def fisher_p(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided Fisher exact p-value for k1 of n1 against k2 of n2; None if a group is empty."""
    if n1 == 0 or n2 == 0:
        return None
    k, n = k1 + k2, n1 + n2

    def probability(x: int) -> float:
        return math.comb(n1, x) * math.comb(n2, k - x) / math.comb(n, k)

    observed = probability(k1)
    low, high = max(0, k - n2), min(k, n1)
    p = sum(probability(x) for x in range(low, high + 1) if probability(x) <= observed * (1 + 1e-9))
    return min(1.0, p)


MAX_EXACT_PAIRS = 20
"""The sign-flip test enumerates 2^n sign assignments; 20 pairs are about a million."""


def sign_flip_p_value(diffs: Sequence[float]) -> float:
    """Exact two-sided p-value of the paired sign-flip permutation test (Fisher 1935): under the null
    hypothesis each paired difference is as likely negative as positive, so all 2^n assignments of
    signs to |d_i| are equally likely; p is the share of them whose |Σ ± |d_i|| is at least the
    observed |Σ d_i| (sums within 1e-9 · Σ |d_i| of it count as ties: rounding). ValueError beyond
    MAX_EXACT_PAIRS pairs or with none."""
    n = len(diffs)
    if not 0 < n <= MAX_EXACT_PAIRS:
        raise ValueError(f"the exact sign-flip test takes 1 to {MAX_EXACT_PAIRS} pairs, got {n}")
    sizes = [abs(d) for d in diffs]
    observed = abs(sum(diffs))
    tolerance = 1e-9 * max(sum(sizes), 1.0)
    extreme = 0
    for mask in range(1 << n):
        total = sum(-s if mask >> i & 1 else s for i, s in enumerate(sizes))
        extreme += abs(total) >= observed - tolerance
    return extreme / (1 << n)


def sign_test_p_value(diffs: Sequence[float]) -> float:
    """Exact two-sided p-value of the sign test: zero differences dropped, the count of negative ones
    is Binomial(m, ½) under the null hypothesis, p = min(1, 2·P(X ≤ min(k, m − k))); 1 when all are 0."""
    negative = sum(d < 0 for d in diffs)
    m = negative + sum(d > 0 for d in diffs)
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(negative, m - negative) + 1))
    return min(1.0, 2 * tail / 2**m)


def sign_flip_p(differences: Sequence[float]) -> float | None:
    """`sign_flip_p_value` of the paired differences; None for no pair or more than
    MAX_EXACT_PAIRS."""
    if not 0 < len(differences) <= MAX_EXACT_PAIRS:
        return None
    return sign_flip_p_value(differences)
