"""Small exact statistics shared by the studies: mean ± std, a permutation test, Fisher's exact test.

With 10 seeds per arm the samples are small and far from normal (a run either spikes or not), so
the tests are exact and assume nothing about the distribution:
- `permutation_p(a, b)`: two-sided p-value of the difference of means, over every way of splitting
  the pooled values into groups of len(a) and len(b) (184,756 splits for 10 + 10);
- `fisher_p(k1, n1, k2, n2)`: two-sided Fisher exact test of two proportions (e.g. failed runs),
  summing the hypergeometric probabilities of all tables no more likely than the observed one.
"""

from __future__ import annotations

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


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Exact two-sided permutation p-value of mean(a) − mean(b); None if a group is empty or too big."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0 or math.comb(n1 + n2, n1) > MAX_SPLITS:
        return None
    pooled = np.asarray(list(a) + list(b), dtype=np.float64)
    total = pooled.sum()
    observed = abs(np.mean(a) - np.mean(b))
    splits = np.array(list(itertools.combinations(range(n1 + n2), n1)), dtype=np.int64)
    sums = pooled[splits].sum(axis=1)
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


def sign_flip_p(differences: Sequence[float]) -> float | None:
    """Exact two-sided sign-flip p-value of mean(differences) = 0 for paired differences: the share
    of the 2ⁿ sign patterns whose |mean| reaches the observed one; None for no pair or n > 20."""
    n = len(differences)
    if n == 0 or n > 20:
        return None
    values = np.asarray(differences, dtype=np.float64)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    means = np.abs(signs @ values) / n
    observed = abs(values.mean())
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))
