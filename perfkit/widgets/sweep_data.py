"""The data behind SweepExplorer: sweep frames read from what a user has (a frame, a pair, a file, a
folder), the metrics they offer, and the points one view shows (value and interval per configuration)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from ..arguments import path as check_path
from ..bench.sweep_dataset import is_sweep_dataset, load_sweep
from ..errors import ArgumentError
from ..frames.schemas import SWEEP, SWEEP_LAYERS
from ..plots._sweep_points import ALWAYS, GROUPS, KEYS, METRICS, X_AXES, rank  # noqa: F401 - the vocabulary
from ..plots.sweep import median_interval
from ._sources import read_parquet

WHAT = "SweepExplorer: sweep"


def read_sweep(source: Any) -> tuple:
    """(sweep frame, sweep_layers frame or None) from a SWEEP frame, a (sweep, sweep_layers) pair, a
    ``.parquet`` file (its layers beside it as ``<name>_layers.parquet``), a folder holding
    ``sweep.parquet`` (and ``sweep_layers.parquet``), a sweep dataset folder (``pk.sweep(..., out=FOLDER)``,
    read by :func:`perfkit.bench.sweep_dataset.load_sweep`), or None (an empty sweep, to be filled live)."""
    if source is None:
        return SWEEP.frame([]), None
    if isinstance(source, pd.DataFrame):
        return _checked(source, SWEEP, WHAT), None
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise ArgumentError(f"{WHAT}: a pair is (sweep frame, sweep_layers frame or None), not {len(source)} items")
        frame = _checked(source[0], SWEEP, f"{WHAT}[0]")
        layers = None if source[1] is None else _checked(source[1], SWEEP_LAYERS, f"{WHAT}[1] (sweep_layers)")
        return frame, layers
    p = check_path(source, f"{WHAT} (a frame, a (sweep, layers) pair, a .parquet file or a folder with sweep.parquet)")
    if is_sweep_dataset(p):           # a partitioned dataset (pk.sweep(..., out=FOLDER), distributed or not)
        layers = load_sweep(p, layers=True)
        return load_sweep(p), layers if len(layers) else None
    file = os.path.join(p, "sweep.parquet") if os.path.isdir(p) else p
    if not os.path.isfile(file):
        raise ArgumentError(f"{WHAT}: {file!r} does not exist; pass a sweep's .parquet file (pk.sweep(..., out=...)) "
                            "or a folder that holds sweep.parquet")
    frame = _checked(_read(file), SWEEP, f"{WHAT} ({file})")
    beside = file[:-len(".parquet")] + "_layers.parquet" if file.endswith(".parquet") else None
    layers = _checked(_read(beside), SWEEP_LAYERS, f"{WHAT} ({beside})") if beside and os.path.isfile(beside) else None
    return frame, layers


def _read(file: str) -> pd.DataFrame:
    return read_parquet(file, WHAT, "pass the file a sweep wrote (pk.sweep(..., out=...))")


def _checked(frame: Any, schema: Any, what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ArgumentError(f"{what} must be a pandas DataFrame of the {schema.name!r} schema, "
                            f"not {type(frame).__name__}")
    missing = [c.name for c in schema.columns if not c.optional and c.name not in frame.columns]
    if missing:
        raise ArgumentError(f"{what} is not a {schema.name!r} frame: it lacks {missing}; pass what pk.sweep "
                            f"returned{' with layers=True' if schema is SWEEP_LAYERS else ''}")
    return frame


def metrics_of(frame: pd.DataFrame, layers: Any) -> list:
    """The metrics a sweep offers: the standard ones, p99 and measured memory when recorded, per-layer
    time when per-layer rows exist."""
    out = [m for m in METRICS if m in ALWAYS or m in frame.columns]
    if layers is not None and len(layers):
        out.append("layer_time_ms")
    return out


def x_axes_of(frame: pd.DataFrame) -> list:
    return [x for x in X_AXES if x != "streams" or "streams" in frame.columns]


def precisions_of(*frames: Any) -> list:
    found = {p for f in frames if f is not None and len(f) for p in f["precision"].dropna().unique()}
    return sorted(found, key=rank)


def layer_names(layers: Any) -> list:
    """Layer names of the per-layer rows, in execution order (the first index each was seen at)."""
    if layers is None or not len(layers):
        return []
    return layers.groupby("layer", sort=False)["index"].min().sort_values(kind="stable").index.tolist()


def points(frame: pd.DataFrame, layers: Any, metric: str, layer: Any, precisions: Any) -> pd.DataFrame:
    """One row per measured configuration shown: the keys, ``value`` of ``metric`` with its interval
    (``low``/``high``, NaN where none is known), and the trust columns (spread, unstable, host load)."""
    if metric == "layer_time_ms":
        src = layers[layers["layer"] == layer] if layers is not None else SWEEP_LAYERS.frame([])
        out = src[list(KEYS)].copy()
        out["value"], out["low"], out["high"] = src["median_ms"], src["ci_low_ms"], src["ci_high_ms"]
        trust = _trust(frame)
        out = out.merge(trust, on=list(KEYS), how="left") if len(trust) else out.assign(**{c: np.nan for c in _TRUST})
    else:
        ok = frame["error"].fillna("") == "" if "error" in frame.columns else pd.Series(True, index=frame.index)
        src = frame[ok & frame["iterations"].gt(0)]
        out = src[[k for k in (*KEYS, "streams") if k in src.columns]].copy()
        out["value"] = _metric_values(src, metric)
        band = median_interval(src, metric)
        out["low"], out["high"] = band if band is not None else (np.nan, np.nan)
        out = out.join(_trust(src).drop(columns=list(KEYS)))
    if precisions is not None:
        out = out[out["precision"].isin(list(precisions))]
    out = out.dropna(subset=["value"]).reset_index(drop=True)
    out.attrs = dict(frame.attrs)                   # the sweep's device name titles per-layer views too
    return out


_TRUST = ("latency_cv_pct", "unstable", "remeasured", "host_load_1m", "host_cpus")


def _trust(frame: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in _TRUST if c in frame.columns]
    out = frame[list(KEYS) + cols].copy()
    for c in _TRUST:
        if c not in out.columns:
            out[c] = np.nan
    return out.drop_duplicates(list(KEYS), keep="last")


def _metric_values(frame: pd.DataFrame, metric: str) -> pd.Series:
    if metric == "time_per_sample_ms":
        return frame["latency_median_ms"].astype(float) / frame["batch_size"].astype(float)
    return frame[metric].astype(float)
