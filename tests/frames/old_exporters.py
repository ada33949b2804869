"""Exports of run frames: Chrome trace-event JSON (opens in Perfetto) and trtexec-compatible JSON."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _t0(run: Any) -> int:
    starts = [int(f[c].min()) for f, c in ((run.layers, "start_ns"), (run.kernels, "start_ns"),
                                           (run.memory, "ts_ns"), (run.queries, "enqueue_start_ns"))
              if len(f)]
    return min(starts) if starts else 0


def chrome_trace(run: Any) -> dict:
    """Trace-event JSON: layers as slices per stream, kernels on their streams, queries, device memory
    in use as a counter track, GPU clocks and power as counters. Times in microseconds from the run's start."""
    t0 = _t0(run)
    us = lambda ns: (int(ns) - t0) / 1e3  # noqa: E731
    ev: list = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": f"perfkit {run.meta.get('engine', '')}"
                                                                              f" on {run.meta.get('device', '')}"}},
                {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "GPU kernels (CUPTI)"}},
                {"ph": "M", "name": "process_name", "pid": 3, "args": {"name": "host"}}]
    tids: dict = {}

    def tid(kind: str, key: Any) -> int:
        k = (kind, str(key))
        if k not in tids:
            tids[k] = len(tids) + 1
            pid = 2 if kind == "kernels" else 1
            ev.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tids[k], "args": {"name": f"{kind} {key}"}})
        return tids[k]

    for r in run.layers.itertuples(index=False):
        ev.append({"ph": "X", "cat": "layer", "name": r.layer, "pid": 1, "tid": tid("layers", r.stream),
                   "ts": us(r.start_ns), "dur": max((r.end_ns - r.start_ns) / 1e3, 0.001),
                   "args": {"type": r.type, "iteration": int(r.iteration), "batch_size": int(r.batch_size),
                            "precision": r.precision, "context": r.context}})
    for r in run.kernels.itertuples(index=False):
        ev.append({"ph": "X", "cat": "kernel", "name": r.name, "pid": 2, "tid": tid("kernels", r.stream),
                   "ts": us(r.start_ns), "dur": max((r.end_ns - r.start_ns) / 1e3, 0.001),
                   "args": {"layer": r.layer, "iteration": int(r.iteration), "correlation_id": int(r.correlation_id)}})
    for r in run.queries.itertuples(index=False):
        ev.append({"ph": "X", "cat": "query", "name": f"query {r.query} (batch {r.batch_size})", "pid": 3,
                   "tid": tid("queries", r.stream), "ts": us(r.enqueue_start_ns),
                   "dur": max((r.end_ns - r.enqueue_start_ns) / 1e3, 0.001),
                   "args": {"compute_ms": _f(r.compute_ms), "host_latency_ms": _f(r.host_latency_ms)}})
    for r in run.memory.itertuples(index=False):
        ev.append({"ph": "C", "name": "device memory in use", "pid": 1, "ts": us(r.ts_ns),
                   "args": {"in_use_bytes": int(r.in_use_bytes)}})
    for r in run.gpu.itertuples(index=False):
        ev.append({"ph": "C", "name": "GPU", "pid": 2, "ts": us(r.ts_ns),
                   "args": {"sm_clock_mhz": _f(r.sm_clock_mhz), "power_w": _f(r.power_w),
                            "util_gpu_pct": _f(r.util_gpu_pct)}})
    return {"traceEvents": ev, "displayTimeUnit": "ms",
            "otherData": {k: str(v) for k, v in run.meta.items()}}


def _f(v: Any) -> float | None:
    v = float(v)
    return None if np.isnan(v) else v


def trtexec_profile(layer_times: pd.DataFrame) -> list:
    """trtexec --exportProfile: ``[{"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, ...]``."""
    if layer_times.empty:
        return [{"count": 0}]
    n = int(layer_times["iteration"].nunique())
    total = float(layer_times["ms"].sum())
    out: list = [{"count": n}]
    for (index, name), g in layer_times.groupby(["index", "layer"], sort=True):
        ms = g["ms"].to_numpy()
        out.append({"name": name, "timeMs": float(ms.sum()), "averageMs": float(ms.mean()),
                    "medianMs": float(np.median(ms)), "percentage": 100.0 * float(ms.sum()) / total if total else 0.0})
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
