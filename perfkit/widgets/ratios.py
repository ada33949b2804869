"""Ratios b/a of median latencies with a 95% interval: from two sweeps' rows (their intervals of the
median, combined on the log scale) or from two runs' per-layer samples (a bootstrap of the ratio of
medians); the statistics live in ``frames.stats``. A ratio whose interval holds 1, has no interval,
or lies within 3% of 1 is not a significant difference: the two cannot be told apart."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..frames.stats import RATIO_NOISE_PCT as NOISE_PCT
from ..frames.stats import bootstrap_ratio, ratio_from_intervals, ratio_significant


def verdicts(table: pd.DataFrame, labels: tuple) -> pd.DataFrame:
    """Adds ``significant`` and a ``verdict`` in words to a table of ratios b/a. ``significant``: the
    interval is known, excludes 1, and the ratio is at least :data:`NOISE_PCT` % away from 1 (a smaller
    difference is noise even when its interval excludes 1), so the figure's colours, the note's count
    and the table agree. The verdict says how many times the time of a b takes ("0.80x the time")."""
    lo, hi, r = table["ratio_low"], table["ratio_high"], table["ratio"]
    known = lo.notna() & hi.notna()
    excludes = known & ((hi < 1) | (lo > 1))
    noise = (r - 1).abs() * 100 < NOISE_PCT
    table["significant"] = ratio_significant(r, lo, hi)
    words = []
    for ratio, k, ex, small in zip(r, known, excludes, noise):
        times = f"{labels[1]} takes {ratio:.2f}x the time of {labels[0]}"
        if not k:
            words.append(f"{times}; interval unknown: cannot tell")
        elif not ex:
            words.append(f"{times}; not significant (the interval contains 1)")
        elif small:
            words.append(f"{times}; under {NOISE_PCT:g}% apart: treat as noise")
        else:
            words.append(f"{times}: {labels[1] if ratio < 1 else labels[0]} is faster")
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
    engines = "tactics_id" in a.columns and "tactics_id" in b.columns and "precision" in keys
    m = _measured(a, cols, engines).merge(_measured(b, cols, engines), on=keys, suffixes=("_a", "_b"))
    rows = []
    for _, r in m.iterrows():
        ratio, lo, hi = ratio_from_intervals(*(float(r[f"{c}_{s}"]) for s in "ab" for c in cols[len(keys):]))
        rows.append({**{k: r[k] for k in keys}, "a_ms": r["latency_median_ms_a"], "b_ms": r["latency_median_ms_b"],
                     "ratio": ratio, "ratio_low": lo, "ratio_high": hi,
                     **({"engine": _engine(r["tactics_id_a"], r["tactics_id_b"])} if engines else {})})
    table = pd.DataFrame(rows, columns=[*keys, "a_ms", "b_ms", "ratio", "ratio_low", "ratio_high",
                                        *(["engine"] if engines else [])])
    return verdicts(table, labels)


def _engine(a: object, b: object) -> str:
    """'same' where both rows timed an engine of the same builder choices (tactics_id), 'other' where
    they did not, '' where a row does not say (recorded before tactics_id existed)."""
    if not isinstance(a, str) or not isinstance(b, str) or not a or not b:
        return ""
    return "same" if a == b else "other"


def _measured(frame: pd.DataFrame, cols: list, engines: bool = False) -> pd.DataFrame:
    ok = frame["latency_median_ms"].notna()
    if "error" in frame:
        ok &= frame["error"].fillna("") == ""
    out = frame.loc[ok].copy()
    for c in ("latency_ci_low_ms", "latency_ci_high_ms"):
        if c not in out:
            out[c] = np.nan
    return out[cols + (["tactics_id"] if engines else [])].drop_duplicates(cols[:-3], keep="last")


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
    # layers profiled in one run only (engines built differently, or saved before a rename): said, not dropped
    table.attrs["unmatched"] = {labels[0]: [k for k in groups[0] if k not in groups[1]],
                                labels[1]: [k for k in groups[1] if k not in groups[0]]}
    return verdicts(table, labels)
