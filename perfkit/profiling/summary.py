"""Per-layer statistics of a layer_times frame (trtexec --dumpProfile / PyTorch key_averages)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame, one_of
from ..frames.schemas import LAYER_SUMMARY


def layer_summary(layer_times: pd.DataFrame, by: str = "layer", sort: str = "total_ms") -> pd.DataFrame:
    """count, total, mean, median, p90, min, max (ms) and percent of the total, per layer or per type."""
    check_frame(layer_times, "layer_summary: layer_times (a run's layer_times frame)", ("layer", "type", "ms", "index"))
    one_of(by, ("layer", "type"), "layer_summary: by")
    if sort:
        one_of(sort, LAYER_SUMMARY.names, "layer_summary: sort (a column of the summary, or None)")
    if layer_times.empty:
        return LAYER_SUMMARY.frame([])
    keys = ["layer", "type"] if by == "layer" else ["type"]
    grand = float(layer_times["ms"].sum())
    rows = []
    order = layer_times.groupby(keys, sort=False)["index"].min().sort_values()
    for key in order.index:
        key = key if isinstance(key, tuple) else (key,)
        g = layer_times
        for k, v in zip(keys, key):
            g = g[g[k] == v]
        ms = g["ms"].to_numpy()
        rows.append({"layer": key[0] if by == "layer" else key[-1], "type": key[-1], "count": int(ms.size),
                     "total_ms": float(ms.sum()), "mean_ms": float(ms.mean()), "median_ms": float(np.median(ms)),
                     "p90_ms": float(np.percentile(ms, 90)), "min_ms": float(ms.min()), "max_ms": float(ms.max()),
                     "pct": 100.0 * float(ms.sum()) / grand if grand > 0 else 0.0})
    frame = LAYER_SUMMARY.frame(rows, {"by": by})
    if sort and sort in frame.columns:
        frame = frame.sort_values(sort, ascending=sort in ("layer", "type"), kind="stable").reset_index(drop=True)
    return frame
