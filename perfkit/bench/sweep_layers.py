"""Per-layer times of sweep configurations (``sweep(..., layers=True)``): a short profiled pass after a
configuration was timed, summarised per layer into ``sweep_layers`` rows, and the file that keeps them."""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd

from ..frames.schemas import SWEEP_LAYERS
from ..frames.parquet_read import read_parquet
from ..frames.stats import median_ci, median_ci_level

#: profiled inferences per configuration: at least MIN, at most MAX, and no more once MAX_S seconds passed
LAYER_INFERENCES_MIN = 6     # the fewest whose smallest and largest bound the median with 95%
LAYER_INFERENCES_MAX = 10
LAYER_MAX_S = 0.5


def sweep_layers_path(out: Any) -> str:
    """The layers file beside a sweep's ``out`` file: ``<stem>_layers.parquet``."""
    from ..arguments import path
    target = path(out, "sweep_layers_path: out")
    stem = target[:-len(".parquet")] if target.endswith(".parquet") else target
    return stem + "_layers.parquet"


def profile_layers(context: Any, inputs: dict, batch: int) -> pd.DataFrame:
    """A few profiled inferences of ``context`` (the ``layer_times`` frame): layer times only, no
    memory, GPU samples or unprofiled baseline, so the pass costs little beyond the inferences."""
    from ..profiling import profile
    with profile(context, layers=True, memory=False, gpu_metrics=False, baseline=False) as run:
        t_end = time.perf_counter() + LAYER_MAX_S
        for n in range(LAYER_INFERENCES_MAX):
            if n >= LAYER_INFERENCES_MIN and time.perf_counter() > t_end:
                break
            context.execute(inputs, batch)
    return run.layers


def layer_rows(layer_times: pd.DataFrame, engine_layers: pd.DataFrame, key: dict) -> list:
    """One ``sweep_layers`` row per engine layer: median with its 95% interval (and the coverage it reaches), share of the sum of the
    medians, the layer's precision and its flops and bytes per sample. ``key``: run_id, model, device,
    precision, batch_size."""
    if not len(layer_times):
        return []
    info = engine_layers.set_index("index")
    rows = []
    for (index, name, type_), g in layer_times.groupby(["index", "layer", "type"], sort=True):
        ms = g["ms"].to_numpy(dtype=np.float64)
        lo, hi = median_ci(ms)
        i = int(index)
        known = i in info.index
        rows.append({**key, "index": i, "layer": name, "type": type_,
                     "layer_precision": str(info.at[i, "precision"] if known else g["precision"].iloc[0]),
                     "count": int(ms.size), "median_ms": float(np.median(ms)), "ci_low_ms": lo, "ci_high_ms": hi,
                     "ci_level_pct": 100.0 * median_ci_level(ms.size), "pct": 0.0, "flops": float(info.at[i, "flops"]) if known else np.nan,
                     "bytes": float(info.at[i, "bytes"]) if known else np.nan})
    total = sum(r["median_ms"] for r in rows)
    for r in rows:
        r["pct"] = 100.0 * r["median_ms"] / total if total > 0 else 0.0
    return rows


def read_previous_layers(out: Any, done: set) -> pd.DataFrame | None:
    """The layer rows already beside ``out`` for the configurations in ``done`` (model, device,
    precision, batch size); rows of a configuration whose sweep row was never written (a sweep killed
    between the two writes) are dropped, since that configuration is measured again."""
    from ..errors import ArgumentError
    target = sweep_layers_path(out)
    if not os.path.exists(target):
        return None
    try:
        frame = SWEEP_LAYERS.validate(read_parquet(target))
    except Exception as exc:  # noqa: BLE001 - a schema mismatch, or pyarrow's errors for a damaged file
        raise ArgumentError(f"sweep: the layers file {target!r} cannot be resumed ({type(exc).__name__}: {exc}); "
                            "delete it or choose another out") from None
    keys = zip(frame["model"], frame["device"], frame["precision"], frame["batch_size"].astype(int))
    keep = [k in done for k in keys]
    return frame[keep].reset_index(drop=True)
