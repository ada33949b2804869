"""The ProfileExplorer's layer table: the run's per-layer summary joined with what the engine says of
each layer (precision, fused members, tactic, FLOPs and bytes per sample), giving the throughput each
layer achieved (GFLOP/s, GB/s)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..profiling.summary import layer_summary

COLUMNS = ("layer", "type", "precision", "tactic", "count", "median_ms", "ci_low_ms", "ci_high_ms", "total_ms",
           "pct", "gflops_per_s", "gb_per_s", "flops", "bytes", "batch_size", "origin")


def tactics(build_log: Any) -> pd.Series:
    """Engine layer -> the tactic the builder chose for it ('' where none was timed)."""
    if build_log is None or not len(build_log) or "phase" not in build_log:
        return pd.Series(dtype="string")
    t = build_log[(build_log["phase"] == "tactic") & build_log["outcome"].isin(["chosen", "cached"])]
    return t.drop_duplicates("matched", keep="last").set_index("matched")["rule"].astype("string")


def layer_table(layer_times: pd.DataFrame, engine_layers: Any = None, build_log: Any = None) -> pd.DataFrame:
    """One row per layer of ``layer_times`` (columns ``COLUMNS``, in execution order). FLOPs and bytes
    are per sample (from the engine's layers, NaN where unknown); ``gflops_per_s`` and ``gb_per_s``
    are those times the batch size over the median time."""
    s = layer_summary(layer_times, "layer", None)
    out = s.rename(columns={"median_ci_low_ms": "ci_low_ms", "median_ci_high_ms": "ci_high_ms"})
    if len(layer_times):
        first = layer_times.groupby("layer", sort=False).agg(precision=("precision", "last"),
                                                            batch_size=("batch_size", "median"))
        out = out.join(first, on="layer")
    else:
        out = out.assign(precision=pd.Series(dtype="string"), batch_size=pd.Series(dtype=float))
    if engine_layers is not None and len(engine_layers):
        eng = engine_layers.drop_duplicates("layer").set_index("layer")
        out["origin"] = out["layer"].map(eng["origin"]).fillna("")
        out["flops"] = out["layer"].map(eng["flops"]).astype(float)
        out["bytes"] = out["layer"].map(eng["bytes"]).astype(float)
        out["precision"] = out["layer"].map(eng["precision"]).fillna(out["precision"])
    else:
        out["origin"], out["flops"], out["bytes"] = "", np.nan, np.nan
    chosen = tactics(build_log).to_dict()
    out["tactic"] = [chosen.get(name, "") for name in out["layer"]]
    seconds = out["median_ms"].astype(float) / 1e3
    work = out["batch_size"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["gflops_per_s"] = np.where(seconds > 0, out["flops"] * work / seconds / 1e9, np.nan)
        out["gb_per_s"] = np.where(seconds > 0, out["bytes"] * work / seconds / 1e9, np.nan)
    return out[list(COLUMNS)].reset_index(drop=True)
