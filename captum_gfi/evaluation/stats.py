"""Confidence intervals shared by every report: percentile bootstrap, paired and clustered.

Every interval is a percentile bootstrap interval with a fixed seed, so a report rebuilt
from the same records gives the same numbers:

- :func:`bootstrap_ci`: any statistic of a list of records (resampling entries);
- :func:`bootstrap_mean_ci`: the mean, vectorised;
- :func:`paired_bootstrap_ci`: the mean difference of two methods on the same cases;
- :func:`cluster_bootstrap_mean_ci`: two-stage resampling of correlated groups (e.g. the
  cases built from one foreground photo);
- :func:`paired_difference`: both intervals of a paired difference at once, printed as the
  reports' ``+0.123 [+0.100, +0.150] / [+0.080, +0.170]`` cell (cases / groups resampled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "PairedDifference",
    "bootstrap_ci",
    "bootstrap_mean_ci",
    "cluster_bootstrap_mean_ci",
    "paired_bootstrap_ci",
    "paired_difference",
]


def bootstrap_ci(
    values: Sequence[Any],
    statistic: Callable[[Sequence[Any]], float],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    r"""
    ``(estimate, low, high)``: the statistic and its percentile bootstrap
    interval (resampling entries of ``values`` with replacement).
    """
    if len(values) == 0:
        raise ValueError("`values` must not be empty")
    est = float(statistic(values))
    if len(values) == 1:
        return est, est, est
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    boots = np.array([statistic([values[i] for i in row]) for row in idx])
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return est, float(lo), float(hi)


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    r"""
    ``(mean, low, high)``: the mean of ``values`` and its percentile bootstrap
    interval, vectorised (one ``(n_boot, n)`` index draw, fixed ``seed``).
    """
    v = np.asarray(values, dtype=float).reshape(-1)
    if v.size == 0:
        raise ValueError("`values` must not be empty")
    est = float(v.mean())
    if v.size == 1:
        return est, est, est
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return est, float(lo), float(hi)


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    r"""
    Paired bootstrap interval of ``mean(a) - mean(b)``.

    ``a[i]`` and ``b[i]`` are two methods' values on the same case ``i``; cases
    are resampled with replacement and both methods keep their pairing, so the
    interval reflects the per-case differences (which is narrower than two
    independent intervals when the cases' difficulty dominates).

    Args:
        a (sequence of float): method A's value per case.
        b (sequence of float): method B's value on the same cases.
        n_boot (int): resamples.
        seed (int): seed of the resampling.
        level (float): coverage of the interval.

    Returns:
        (difference, low, high) (tuple of float): ``mean(a - b)`` and its
        percentile interval; A beats B on a higher-is-better metric with
        95 % confidence when ``low > 0``.
    """
    x, y = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"`a` and `b` must pair up, got {x.size} and {y.size} values")
    return bootstrap_mean_ci(x - y, n_boot, seed, level)


def cluster_bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    groups: Sequence[Any],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    r"""
    ``(mean, low, high)``: the mean of ``values`` and its two-stage (cluster) percentile
    bootstrap interval: each resample draws the groups with replacement, then the values
    of each drawn group with replacement, and takes the mean over all drawn values.

    Use it when values come in correlated groups (e.g. benchmark cases built from the
    same foreground photo): resampling single values then treats ``n`` cases as ``n``
    independent draws and gives too narrow an interval when the groups differ. With one
    group this is :func:`bootstrap_mean_ci`'s interval.

    Args:
        values (sequence of float): one value per case (e.g. a paired difference).
        groups (sequence): the group of each value (any hashable).
        n_boot (int): resamples.
        seed (int): seed of the resampling.
        level (float): coverage of the interval.

    Returns:
        (mean, low, high) (tuple of float).
    """
    v = np.asarray(values, dtype=float).reshape(-1)
    if v.size == 0:
        raise ValueError("`values` must not be empty")
    if len(groups) != v.size:
        raise ValueError(f"`groups` must have one entry per value, got {len(groups)} and {v.size}")
    names = list(dict.fromkeys(groups))
    members = [v[[i for i, g in enumerate(groups) if g == name]] for name in names]
    k = len(names)
    est = float(v.mean())
    if v.size == 1:
        return est, est, est
    rng = np.random.default_rng(seed)
    # how often each resample draws each group (stage 1), then that many resamples of the
    # group's values (stage 2), summed per resample: O(n_boot * n) time and memory
    counts = np.ones((n_boot, k), dtype=np.int64)
    if k > 1:
        counts[:] = 0
        chosen = rng.integers(0, k, size=(n_boot, k))
        np.add.at(counts, (np.repeat(np.arange(n_boot), k), chosen.ravel()), 1)
    totals = np.zeros(n_boot)
    for g, m in enumerate(members):
        reps = counts[:, g] * m.size
        draws = m[rng.integers(0, m.size, size=int(reps.sum()))]
        totals += np.bincount(np.repeat(np.arange(n_boot), reps), weights=draws, minlength=n_boot)
    sizes = np.array([m.size for m in members], dtype=float)
    boots = totals / (counts @ sizes)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return est, float(lo), float(hi)


class PairedDifference(NamedTuple):
    """``mean(a - b)`` with its case-resampled and its group-resampled 95 % intervals.

    ``str()`` gives the reports' cell, ``+d [low, high] / [group_low, group_high]``.
    """

    difference: float
    low: float
    high: float
    group_low: float
    group_high: float

    @property
    def excludes_zero(self) -> bool:
        """Whether the group-resampled (the wider, honest) interval leaves out 0."""
        return self.group_low > 0 or self.group_high < 0

    def __str__(self) -> str:
        return (
            f"{self.difference:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"
            f" / [{self.group_low:+.3f}, {self.group_high:+.3f}]"
        )


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    groups: Sequence[Any],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDifference:
    r"""
    ``mean(a) - mean(b)`` of two methods on the same cases, with
    :func:`paired_bootstrap_ci`'s interval (cases resampled) and
    :func:`cluster_bootstrap_mean_ci`'s interval of the per-case differences (``groups``
    resampled, e.g. the cases' foreground photos).

    Args:
        a (sequence of float): method A's value per case.
        b (sequence of float): method B's value on the same cases.
        groups (sequence): the group of each case (any hashable).
        n_boot (int): resamples.
        seed (int): seed of the resampling.
        level (float): coverage of the intervals.

    Returns:
        PairedDifference: the difference and both intervals; ``str()`` of it is the cell
        the reports print.
    """
    x, y = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    diff, low, high = paired_bootstrap_ci(x, y, n_boot, seed, level)
    _, glow, ghigh = cluster_bootstrap_mean_ci(x - y, groups, n_boot, seed, level)
    return PairedDifference(diff, low, high, glow, ghigh)
