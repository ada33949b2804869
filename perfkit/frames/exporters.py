"""Exports of run frames: Chrome trace-event JSON (opens in Perfetto) and trtexec-compatible JSON."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .stats import aggregations


def _t0(run: Any) -> int:
    starts = [int(f[c].min()) for f, c in ((run.layers, "start_ns"), (run.kernels, "start_ns"),
                                           (run.memory, "ts_ns"), (run.queries, "enqueue_start_ns"),
                                           (run.gpu, "ts_ns"))
              if len(f)]
    return min(starts) if starts else 0


def chrome_trace(run: Any) -> dict:
    """Trace-event JSON: layers as slices per stream, kernels on their streams, queries, device memory
    in use as a counter track, GPU clocks and power as counters. Times in microseconds from the run's start.

    Built column by column (one NumPy expression per field, one list of events per frame): a run of
    180,000 layer rows converts in a fraction of a second. Metadata events (process and thread names)
    come first; a thread id is given to each (frame, stream) in the order the frames list them."""
    t0 = _t0(run)
    ev: list = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": f"perfkit {run.meta.get('engine', '')}"
                                                                              f" on {run.meta.get('device', '')}"}},
                {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "GPU kernels (CUPTI)"}},
                {"ph": "M", "name": "process_name", "pid": 3, "args": {"name": "host"}}]
    tids: dict = {}

    def tid_column(kind: str, streams: pd.Series) -> list:
        keys = streams.astype(str).to_numpy(dtype=object)
        for key in pd.unique(keys):
            if (kind, key) not in tids:
                tids[(kind, key)] = len(tids) + 1
                ev.append({"ph": "M", "name": "thread_name", "pid": 2 if kind == "kernels" else 1,
                           "tid": tids[(kind, key)], "args": {"name": f"{kind} {key}"}})
        return [tids[(kind, k)] for k in keys]

    slices: list = []
    L, K, Q = run.layers, run.kernels, run.queries
    if len(L):
        slices += [{"ph": "X", "cat": "layer", "name": n, "pid": 1, "tid": t, "ts": ts, "dur": d,
                    "args": {"type": ty, "iteration": it, "batch_size": b, "precision": pr, "context": c}}
                   for n, t, ts, d, ty, it, b, pr, c in zip(
                       _strings(L["layer"]), tid_column("layers", L["stream"]), *_span(L["start_ns"], L["end_ns"], t0),
                       _strings(L["type"]), _ints(L["iteration"]), _ints(L["batch_size"]), _strings(L["precision"]),
                       _strings(L["context"]))]
    if len(K):
        slices += [{"ph": "X", "cat": "kernel", "name": n, "pid": 2, "tid": t, "ts": ts, "dur": d,
                    "args": {"layer": ly, "iteration": it, "correlation_id": ci}}
                   for n, t, ts, d, ly, it, ci in zip(
                       _strings(K["name"]), tid_column("kernels", K["stream"]), *_span(K["start_ns"], K["end_ns"], t0),
                       _strings(K["layer"]), _ints(K["iteration"]), _ints(K["correlation_id"]))]
    if len(Q):
        names = ("query " + Q["query"].astype(str) + " (batch " + Q["batch_size"].astype(str) + ")").tolist()
        slices += [{"ph": "X", "cat": "query", "name": n, "pid": 3, "tid": t, "ts": ts, "dur": d,
                    "args": {"compute_ms": cm, "host_latency_ms": hl}}
                   for n, t, ts, d, cm, hl in zip(
                       names, tid_column("queries", Q["stream"]), *_span(Q["enqueue_start_ns"], Q["end_ns"], t0),
                       _floats(Q["compute_ms"]), _floats(Q["host_latency_ms"]))]
    M, G = run.memory, run.gpu
    if len(M):
        slices += [{"ph": "C", "name": "device memory in use", "pid": 1, "ts": ts, "args": {"in_use_bytes": b}}
                   for ts, b in zip(_us(M["ts_ns"], t0), _ints(M["in_use_bytes"]))]
    if len(G):
        slices += [{"ph": "C", "name": "GPU", "pid": 2, "ts": ts,
                    "args": {"sm_clock_mhz": sm, "power_w": pw, "util_gpu_pct": u}}
                   for ts, sm, pw, u in zip(_us(G["ts_ns"], t0), _floats(G["sm_clock_mhz"]), _floats(G["power_w"]),
                                            _floats(G["util_gpu_pct"]))]
    return {"traceEvents": ev + slices, "displayTimeUnit": "ms",
            "otherData": {k: str(v) for k, v in run.meta.items()}}


def _us(ns: pd.Series, t0: int) -> list:
    """Microseconds since ``t0`` (exact integer difference, then one division, as floats)."""
    return ((ns.to_numpy(dtype=np.int64) - np.int64(t0)) / 1e3).tolist()


def _span(start: pd.Series, end: pd.Series, t0: int) -> tuple:
    dur = np.maximum((end.to_numpy(dtype=np.int64) - start.to_numpy(dtype=np.int64)) / 1e3, 0.001)
    return _us(start, t0), dur.tolist()


def _ints(col: pd.Series) -> list:
    return col.to_numpy(dtype=np.int64).tolist()


def _floats(col: pd.Series) -> list:
    """Floats with NaN as None (JSON null)."""
    v = col.to_numpy(dtype=np.float64)
    return [None if x != x else x for x in v.tolist()]


def _strings(col: pd.Series) -> list:
    """Strings with missing values as None (JSON null)."""
    return col.astype(object).where(col.notna(), None).tolist()


def trtexec_profile(layer_times: pd.DataFrame) -> list:
    """trtexec --exportProfile: ``[{"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, ...]``."""
    if layer_times.empty:
        return [{"count": 0}]
    n = int(layer_times["iteration"].nunique())
    total = float(layer_times["ms"].sum())
    out: list = [{"count": n}]
    stats = layer_times.groupby(["index", "layer"], sort=True)["ms"].agg(
        **{k: f for k, f in aggregations(()).items() if k in ("total", "mean", "median")})
    for (_, name), row in stats.iterrows():
        out.append({"name": name, "timeMs": float(row["total"]), "averageMs": float(row["mean"]),
                    "medianMs": float(row["median"]),
                    "percentage": 100.0 * float(row["total"]) / total if total else 0.0})
    return out


def trtexec_times(queries: pd.DataFrame) -> list:
    """trtexec --exportTimes: one object per query with start/end and durations in ms."""
    if queries.empty:
        return []
    base = int(queries["enqueue_start_ns"].min())
    ms = lambda ns: (int(ns) - base) / 1e6  # noqa: E731
    out = []
    for r in queries.itertuples(index=False):
        start_h2d = ms(r.enqueue_end_ns)
        end_h2d = start_h2d + float(r.h2d_ms)
        end_compute = end_h2d + float(np.nan_to_num(r.compute_ms))
        end_d2h = end_compute + float(r.d2h_ms)
        out.append({"startEnqMs": ms(r.enqueue_start_ns), "endEnqMs": ms(r.enqueue_end_ns),
                    "startH2dMs": start_h2d, "endH2dMs": end_h2d, "startComputeMs": end_h2d,
                    "endComputeMs": end_compute, "startD2hMs": end_compute, "endD2hMs": end_d2h,
                    "h2dMs": float(r.h2d_ms), "computeMs": float(np.nan_to_num(r.compute_ms)), "d2hMs": float(r.d2h_ms),
                    "latencyMs": float(np.nan_to_num(r.latency_ms)), "endToEndMs": float(r.host_latency_ms)})
    return out
