"""Per-layer statistics of a layer_times frame (trtexec --dumpProfile / PyTorch key_averages)."""
from __future__ import annotations

import pandas as pd

from ..arguments import frame, one_of
from ..frames.schemas import LAYER_SUMMARY
from ..frames.stats import aggregations

BY = ("layer", "type")
_PERCENTILES = (90,)


def layer_summary(layer_times: pd.DataFrame, by: str = "layer", sort: str = "total_ms") -> pd.DataFrame:
    """count, total, mean, median (with its 95 % confidence interval), p90, min, max, std (ms) and
    percent of the total, per layer (``by="layer"``) or per layer type (``by="type"``), sorted by
    ``sort`` (a column of the summary; ``None`` or ``""`` keeps execution order)."""
    one_of(by, BY, "layer_summary: by")
    if sort:
        one_of(sort, LAYER_SUMMARY.names, "layer_summary: sort (or None for execution order)")
    frame(layer_times, "layer_summary: layer_times (run.layers)", ("layer", "type", "index", "ms"))
    if layer_times.empty:
        return LAYER_SUMMARY.frame([], {"by": by})
    keys = ["layer", "type"] if by == "layer" else ["type"]
    grouped = layer_times.groupby(keys, sort=False)
    stats = grouped["ms"].agg(**aggregations(_PERCENTILES, suffix="_ms"))
    stats["first_index"] = grouped["index"].min()
    stats = stats.sort_values("first_index", kind="stable").reset_index()
    grand = float(layer_times["ms"].sum())
    stats["pct"] = 100.0 * stats["total_ms"] / grand if grand > 0 else 0.0
    if by == "type":
        stats["layer"] = stats["type"]
    out = LAYER_SUMMARY.frame(stats[LAYER_SUMMARY.names].to_dict("records"), {"by": by})
    if sort:
        out = out.sort_values(sort, ascending=sort in BY, kind="stable").reset_index(drop=True)
    return out
