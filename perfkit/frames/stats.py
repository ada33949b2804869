"""Latency statistics, defined once: every summary of timed samples in perfkit uses these functions.

A latency summary states its spread: besides the median and percentiles it gives the standard
deviation and a distribution-free confidence interval of the median (order statistics: the
interval between two sorted samples whose ranks come from the Binomial(n, 1/2) distribution, so
it assumes nothing about the shape of the latency distribution). The interval covers the median
with at least 95%; :func:`median_ci_level` gives the coverage actually reached (0.969 with 6
samples). Fewer than 6 samples cannot reach 95% (even their smallest and largest cover the median
with only 94% at 5, 75% at 3), so their interval is NaN: unknown, not narrow. Percentiles
interpolate linearly between samples (NumPy's and pandas' default). :func:`spread_pct` is the one
measure of spread that instability verdicts use (robust to a single outlier). Ratios of two medians
with an interval: :func:`ratio_from_intervals` (from two intervals) and :func:`bootstrap_ratio`
(from two sample sets).

:func:`latency_stats` summarises one array; :func:`aggregations` gives the same statistics as
named functions for ``DataFrame.groupby(...).agg(**aggregations(...))``.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Callable, Sequence

import numpy as np

DEFAULT_PERCENTILES = (90, 95, 99)
CONFIDENCE = 0.95
#: a ratio of latencies within this many percent of 1 is noise even when its interval excludes 1
RATIO_NOISE_PCT = 3.0


def _values(samples: Any) -> np.ndarray:
    return np.asarray(samples, dtype=np.float64).reshape(-1)


def percentile(p: float) -> Callable:
    """The ``p``-th percentile (0-100) of the samples, as a function for ``agg``."""
    def f(samples: Any) -> float:
        v = _values(samples)
        return float(np.percentile(v, p)) if v.size else math.nan
    f.__name__ = f"p{p:g}"
    return f


def _binomial_cdf(n: int) -> np.ndarray:
    """P(X <= j) for j = 0..n, X ~ Binomial(n, 1/2)."""
    logpmf = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(n + 1)]) \
        - n * math.log(2.0)
    return np.cumsum(np.exp(logpmf))


def _ranks_and_level(n: int, confidence: float) -> tuple[int, float]:
    """The 0-based rank j of the interval's low end (the high end is n - 1 - j) and its exact coverage;
    (-1, NaN) when even the smallest and largest sample cover the median with less than ``confidence``."""
    if n <= 0:
        return -1, math.nan
    alpha = (1.0 - confidence) / 2
    if n <= 1000:
        cdf = _binomial_cdf(n)
        # the largest j with P(X <= j) <= alpha: the (j+1)-th smallest and the (j+1)-th largest sample
        # cover the median with 1 - 2 P(X <= j)
        j = min(int(np.searchsorted(cdf, alpha, side="right")) - 1, (n - 1) // 2)
        return (j, float(1.0 - 2.0 * cdf[j])) if j >= 0 else (-1, math.nan)
    z = NormalDist().inv_cdf(1.0 - alpha)
    j = int(math.floor((n - z * math.sqrt(n)) / 2)) - 1
    return j, 1.0 - 2.0 * NormalDist(n / 2, math.sqrt(n) / 2).cdf(j + 0.5)


def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """0-based ranks (lo, hi) of the sorted samples bounding the median with at least ``confidence``
    coverage, distribution-free (exact binomial tail up to 1,000 samples, its normal approximation
    above); None when ``n`` samples are too few for that coverage (fewer than 6 at 95%)."""
    j, _ = _ranks_and_level(n, confidence)
    return None if j < 0 else (j, n - 1 - j)


def median_ci_level(n: int, confidence: float = CONFIDENCE) -> float:
    """The coverage (0-1) that :func:`median_ci` achieves with ``n`` samples: at least ``confidence``
    (0.969 at n = 6, 0.979 at n = 10); NaN when ``n`` is too small to reach it."""
    return _ranks_and_level(n, confidence)[1]


def median_ci(samples: Any, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Distribution-free confidence interval of the median (two sample values, the order statistics of
    :func:`median_ci_ranks`); NaN bounds when the samples are too few for ``confidence`` coverage."""
    v = np.sort(_values(samples))
    ranks = median_ci_ranks(v.size, confidence)
    if ranks is None:
        return (math.nan, math.nan)
    return (float(v[ranks[0]]), float(v[ranks[1]]))


def spread_pct(samples: Any) -> float:
    """Robust coefficient of variation in %: the interquartile range / 1.349 over the median (the
    standard deviation over the mean for normal data). A few outliers (under a quarter of the samples)
    leave it unchanged, while a real spread shows, such as two modes each holding over a quarter of
    the samples (which the median absolute deviation misses when one mode holds a bare majority).
    0 for fewer than two samples or a median of 0 or less. perfkit's ``latency_cv_pct`` values, and the
    instability verdicts of sweeps, runs and measurements, are this measure."""
    v = _values(samples)
    med = float(np.median(v)) if v.size else math.nan
    if v.size < 2 or not med > 0:
        return 0.0
    q1, q3 = np.percentile(v, [25, 75])
    return float(100.0 * (q3 - q1) / 1.349 / med)


def _bootstrap_medians(v: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    return np.median(v[rng.integers(0, v.size, (resamples, v.size))], axis=1)


def bootstrap_ratio(a: Any, b: Any, seed: int = 0, resamples: int = 2000) -> tuple[float, float, float]:
    """(ratio of medians b/a, low, high): percentile bootstrap at :data:`CONFIDENCE`, the two sample sets
    resampled independently (deterministic for a given seed); NaN where a set is empty or a's median is
    not positive, and NaN bounds where either set has fewer than 2 samples (no spread to resample)."""
    a, b = _values(a), _values(b)
    if not a.size or not b.size or np.median(a) <= 0:
        return math.nan, math.nan, math.nan
    ratio = float(np.median(b) / np.median(a))
    if a.size < 2 or b.size < 2:
        return ratio, math.nan, math.nan
    rng = np.random.default_rng(seed)
    ma, mb = _bootstrap_medians(a, rng, resamples), _bootstrap_medians(b, rng, resamples)
    r = mb / np.where(ma > 0, ma, np.nan)
    alpha = (1 - CONFIDENCE) / 2
    return ratio, float(np.nanquantile(r, alpha)), float(np.nanquantile(r, 1 - alpha))


def ratio_from_intervals(a_ms: float, a_lo: float, a_hi: float, b_ms: float, b_lo: float,
                         b_hi: float) -> tuple[float, float, float]:
    """(ratio, low, high) of b/a from two medians and their :data:`CONFIDENCE` intervals: each interval
    read as ±Z standard errors of the log median, the two errors added in quadrature (delta method).
    NaN bounds ('interval unknown') where either interval is missing, not positive or of zero width
    (a row timed in one round has no interval, not an exact one)."""
    ratio = b_ms / a_ms if a_ms > 0 else math.nan
    ends = (a_lo, a_hi, b_lo, b_hi)
    if any(math.isnan(v) or v <= 0 for v in ends) or not (a_hi > a_lo and b_hi > b_lo):
        return ratio, math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    se = math.hypot(math.log(a_hi / a_lo), math.log(b_hi / b_lo)) / (2 * z)
    return ratio, ratio * math.exp(-z * se), ratio * math.exp(z * se)


def ratio_significant(ratio: Any, low: Any, high: Any) -> Any:
    """Whether ratios b/a differ (element-wise over arrays or Series): the interval is known, excludes 1, and
    the ratio is at least :data:`RATIO_NOISE_PCT` % from 1 (a smaller difference is noise even when its
    interval excludes 1). The one rule ``compare`` and the benchmarks count by."""
    r, lo, hi = (np.asarray(v, dtype=np.float64) for v in (ratio, low, high))
    known = np.isfinite(lo) & np.isfinite(hi)
    excludes = known & ((hi < 1) | (lo > 1))
    return excludes & (np.abs(r - 1) * 100 >= RATIO_NOISE_PCT)


def _ci_low(samples: Any) -> float:
    return median_ci(samples)[0]


def _ci_high(samples: Any) -> float:
    return median_ci(samples)[1]


def _std(samples: Any) -> float:
    v = _values(samples)
    return float(v.std()) if v.size else math.nan


def aggregations(percentiles: Sequence[float] = DEFAULT_PERCENTILES, suffix: str = "") -> dict:
    """Name -> function of the samples, in the order of :func:`latency_stats`' keys (plus ``suffix``)."""
    named: dict = {"count": "size", "total": "sum", "mean": "mean", "median": "median"}
    named.update({f"p{p:g}": percentile(p) for p in percentiles})
    named.update({"min": "min", "max": "max", "std": _std, "median_ci_low": _ci_low, "median_ci_high": _ci_high})
    return {(k if k == "count" else k + suffix): v for k, v in named.items()}


def latency_stats(samples_ms: Any, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict:
    """count, total, mean, median, the ``percentiles``, min, max, std (population) and the 95 %
    confidence interval of the median (``median_ci_low``, ``median_ci_high``) of the samples.

    Every value is a Python float (``count`` an int); with no samples, count is 0 and the rest NaN.
    """
    v = _values(samples_ms)
    if not v.size:
        return {k: (0 if k == "count" else math.nan) for k in aggregations(percentiles)}
    lo, hi = median_ci(v)
    out = {"count": int(v.size), "total": float(v.sum()), "mean": float(v.mean()), "median": float(np.median(v))}
    out.update({f"p{p:g}": float(np.percentile(v, p)) for p in percentiles})
    out.update({"min": float(v.min()), "max": float(v.max()), "std": float(v.std()),
                "median_ci_low": lo, "median_ci_high": hi})
    return out
