"""Latency statistics, defined once: every summary of timed samples in perfkit uses these functions.

A latency summary states its spread: besides the median and percentiles it gives the standard
deviation and a distribution-free confidence interval of the median (order statistics: the
interval between two sorted samples whose ranks come from the Binomial(n, 1/2) distribution, so
it assumes nothing about the shape of the latency distribution). Percentiles interpolate
linearly between samples (NumPy's and pandas' default).

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


def _values(samples: Any) -> np.ndarray:
    return np.asarray(samples, dtype=np.float64).reshape(-1)


def percentile(p: float) -> Callable:
    """The ``p``-th percentile (0-100) of the samples, as a function for ``agg``."""
    def f(samples: Any) -> float:
        v = _values(samples)
        return float(np.percentile(v, p)) if v.size else math.nan
    f.__name__ = f"p{p:g}"
    return f


def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the sorted samples bounding the median with at least ``confidence``
    coverage (exact binomial tail up to 1,000 samples, its normal approximation above). With too
    few samples for that coverage the interval is (0, n - 1): the smallest and largest sample."""
    if n <= 0:
        return (0, -1)
    alpha = (1.0 - confidence) / 2
    if n <= 1000:
        k = np.arange(n + 1)
        logpmf = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k]) \
            - n * math.log(2.0)
        cdf = np.cumsum(np.exp(logpmf))
        # the largest 0-based rank j with P(X <= j) <= alpha, X ~ Binomial(n, 1/2): the interval between the
        # (j+1)-th smallest and the (j+1)-th largest sample covers the median with 1 - 2 P(X <= j)
        j = int(np.searchsorted(cdf, alpha, side="right")) - 1
    else:
        z = NormalDist().inv_cdf(1.0 - alpha)
        j = int(math.floor((n - z * math.sqrt(n)) / 2)) - 1
    j = min(max(j, 0), (n - 1) // 2)
    return (j, n - 1 - j)


def median_ci(samples: Any, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Confidence interval of the median (two sample values), NaN for no samples."""
    v = np.sort(_values(samples))
    if not v.size:
        return (math.nan, math.nan)
    lo, hi = median_ci_ranks(v.size, confidence)
    return (float(v[lo]), float(v[hi]))


def bootstrap_median_ci(values: Sequence[float], seed: int = 0, confidence: float = CONFIDENCE,
                        resamples: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values`` (deterministic for a given seed): for
    few values whose distribution is unknown, such as the round medians of a sweep (``median_ci`` is the
    order-statistic interval for many raw samples)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (math.nan, math.nan)
    if v.size == 1:
        return (float(v[0]), float(v[0]))
    rng = np.random.default_rng(seed)
    medians = np.median(v[rng.integers(0, v.size, size=(resamples, v.size))], axis=1)
    alpha = (1.0 - confidence) / 2
    return (float(np.quantile(medians, alpha)), float(np.quantile(medians, 1.0 - alpha)))


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
