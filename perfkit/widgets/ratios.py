"""Ratios b/a of median latencies with a 95% interval: from two sweeps' rows (their intervals of the
median, combined on the log scale) or from two runs' per-layer samples (a bootstrap of the ratio of
medians). A ratio whose interval holds 1 is not significant: the two cannot be told apart."""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from ..frames.stats import CONFIDENCE

Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
NOISE_PCT = 3.0          # TREx's rule: a difference under 3% is noise even when its interval excludes 1


def ratio_from_intervals(a_ms: float, a_lo: float, a_hi: float, b_ms: float, b_lo: float, b_hi: float) -> tuple:
    """(ratio, low, high) of b/a: each interval read as ±Z standard errors of the log median, the two
    errors added in quadrature (delta method). NaN bounds where an interval is missing."""
    ratio = b_ms / a_ms if a_ms > 0 else math.nan
    if not all(v > 0 for v in (a_lo, a_hi, b_lo, b_hi)) or any(math.isnan(v) for v in (a_lo, a_hi, b_lo, b_hi)):
        return ratio, math.nan, math.nan
    se = math.hypot(math.log(a_hi / a_lo), math.log(b_hi / b_lo)) / (2 * Z)
    return ratio, ratio * math.exp(-Z * se), ratio * math.exp(Z * se)


def bootstrap_ratio(a: np.ndarray, b: np.ndarray, seed: int = 0, resamples: int = 2000) -> tuple:
    """(ratio of medians b/a, low, high): percentile bootstrap, the two sample sets resampled independently."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not a.size or not b.size or np.median(a) <= 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, (resamples, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, (resamples, b.size))], axis=1)
    r = mb / np.where(ma > 0, ma, np.nan)
    alpha = (1 - CONFIDENCE) / 2
    return float(np.median(b) / np.median(a)), float(np.nanquantile(r, alpha)), float(np.nanquantile(r, 1 - alpha))


def verdicts(table: pd.DataFrame, labels: tuple) -> pd.DataFrame:
    """Adds ``significant`` (the interval excludes 1) and a ``verdict`` in words to a table of ratios."""
    lo, hi, r = table["ratio_low"], table["ratio_high"], table["ratio"]
    known = lo.notna() & hi.notna()
    table["significant"] = known & ((hi < 1) | (lo > 1))
    words = []
    for ratio, sig, k in zip(r, table["significant"], known):
        pct = abs(ratio - 1) * 100
        faster = labels[1] if ratio < 1 else labels[0]
        if not k:
            words.append("no interval: cannot tell")
        elif not sig:
            words.append("not significant")
        elif pct < NOISE_PCT:
            words.append(f"{faster} faster by {pct:.1f}%: under {NOISE_PCT:g}%, treat as noise")
        else:
            words.append(f"{faster} faster by {pct:.1f}%" if ratio < 1 else f"{labels[0]} faster: {labels[1]} "
                         f"takes {ratio:.2f}x")
    table["verdict"] = words
    return table


def sweep_ratios(a: pd.DataFrame, b: pd.DataFrame, labels: tuple) -> pd.DataFrame:
    """Per configuration measured in both sweeps (model, precision, batch size; and device when both
    sweeps ran on the same devices; without precision when each sweep holds one other precision): the
    median latencies and the ratio b/a with its interval."""
    keys = ["model", "precision", "batch_size"]
    if set(a["device"]) == set(b["device"]) and a["device"].nunique() > 1:
        keys.insert(1, "device")
    pa, pb = set(a["precision"]), set(b["precision"])
    if len(pa) == 1 and len(pb) == 1 and pa != pb:        # one precision against another: match the rest
        keys.remove("precision")
    cols = keys + ["latency_median_ms", "latency_ci_low_ms", "latency_ci_high_ms"]
    m = _measured(a, cols).merge(_measured(b, cols), on=keys, suffixes=("_a", "_b"))
    rows = []
    for _, r in m.iterrows():
        ratio, lo, hi = ratio_from_intervals(*(float(r[f"{c}_{s}"]) for s in "ab" for c in cols[len(keys):]))
        rows.append({**{k: r[k] for k in keys}, "a_ms": r["latency_median_ms_a"], "b_ms": r["latency_median_ms_b"],
                     "ratio": ratio, "ratio_low": lo, "ratio_high": hi})
    table = pd.DataFrame(rows, columns=[*keys, "a_ms", "b_ms", "ratio", "ratio_low", "ratio_high"])
    return verdicts(table, labels)


def _measured(frame: pd.DataFrame, cols: list) -> pd.DataFrame:
    ok = frame["latency_median_ms"].notna()
    if "error" in frame:
        ok &= frame["error"].fillna("") == ""
    out = frame.loc[ok].copy()
    for c in ("latency_ci_low_ms", "latency_ci_high_ms"):
        if c not in out:
            out[c] = np.nan
    return out[cols].drop_duplicates(cols[:-3], keep="last")


def run_ratios(a: pd.DataFrame, b: pd.DataFrame, labels: tuple, seed: int = 0) -> pd.DataFrame:
    """Per layer profiled in both runs (and the whole inference: the sum of its layers), the median
    times and the ratio b/a with a bootstrap interval over the two runs' samples."""
    rows = []
    sums = [f.groupby("iteration")["ms"].sum().to_numpy() for f in (a, b)]
    groups = [{k: g["ms"].to_numpy() for k, g in f.groupby("layer", sort=False)} for f in (a, b)]
    pairs = [("(inference: sum of layers)", *sums)] + [(k, v, groups[1][k]) for k, v in groups[0].items()
                                                       if k in groups[1]]
    for i, (name, sa, sb) in enumerate(pairs):
        ratio, lo, hi = bootstrap_ratio(sa, sb, seed + i)
        rows.append({"layer": name, "a_ms": float(np.median(sa)), "b_ms": float(np.median(sb)), "ratio": ratio,
                     "ratio_low": lo, "ratio_high": hi})
    table = pd.DataFrame(rows, columns=["layer", "a_ms", "b_ms", "ratio", "ratio_low", "ratio_high"])
    return verdicts(table, labels)
