"""Predicts opportunistic batching (guide 2.1) from a measured latency-vs-batch curve.

``simulate_batching`` runs the policy of :class:`DynamicBatcher` with one instance as a discrete-event
simulation: requests of one sample arrive as a Poisson process; when the engine is free, a batch starts
as soon as ``max_batch_size`` requests wait or the oldest has waited the delay T, whichever comes first
(later, if the engine is still busy then), and takes every waiting request up to ``max_batch_size``;
it runs for the curve's latency at that batch size (linear between measured sizes). The result says,
per T, what the p50/p99 request latency and the throughput would be: a small T keeps the latency low at
light load, a larger T buys bigger batches and so throughput when the load is heavy.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..arguments import integer, number, optional_positive_int, positive_int
from ..errors import ArgumentError, BatchSizeError
from ..frames.schemas_load import BATCHING_SIMULATION
from ._load_args import number_list

MAX_REQUESTS = 10_000_000


def latency_curve(latency_by_batch: Any) -> tuple[np.ndarray, np.ndarray]:
    """(batch sizes, latencies in ms), sorted, from a ``{batch: ms}`` mapping, a frame with ``batch_size`` and
    ``latency_median_ms`` (a sweep) or ``latency_ms`` columns (one row per batch size), or the requests frame of
    a batcher or a load run (``batcher_requests``, ``load_requests``: the median run time of its batches per
    batch size, which includes the batcher's own copying in and out)."""
    what = "simulate_batching: latency_by_batch"
    if isinstance(latency_by_batch, pd.DataFrame) and {"batch", "batch_size", "compute_ms"} <= \
            set(latency_by_batch.columns):      # requests of a batcher or a load run (or several, concatenated)
        f = latency_by_batch                    # the batcher's own batches: median run time per batch size
        if not len(f):
            raise ArgumentError(f"{what}: the requests frame is empty; serve some requests first")
        batches = f.drop_duplicates(["batch"] + (["run_id"] if "run_id" in f.columns else []))
        pairs = batches.groupby("batch_size")["compute_ms"].median().to_dict()
    elif isinstance(latency_by_batch, pd.DataFrame):
        col = next((c for c in ("latency_median_ms", "latency_ms") if c in latency_by_batch.columns), None)
        if "batch_size" not in latency_by_batch.columns or col is None:
            raise ArgumentError(f"{what}: a frame needs batch_size and latency_median_ms (or latency_ms) columns, "
                                f"has {list(latency_by_batch.columns)[:8]}")
        if latency_by_batch["batch_size"].duplicated().any():
            raise ArgumentError(f"{what}: the frame has several rows per batch size (several models or "
                                "precisions?); select one configuration first, e.g. "
                                "sweep[(sweep.model == 'm') & (sweep.precision == 'fp32')]")
        pairs = dict(zip(latency_by_batch["batch_size"].tolist(), latency_by_batch[col].tolist()))
    elif isinstance(latency_by_batch, Mapping):
        pairs = dict(latency_by_batch)
    else:
        raise ArgumentError(f"{what} must be a mapping batch size -> latency in ms, such as {{1: 0.5, 8: 1.2}}, or "
                            "a frame with batch_size and latency_median_ms columns, not "
                            f"{type(latency_by_batch).__name__}")
    if not pairs:
        raise ArgumentError(f"{what} is empty; give the latency of at least one batch size")
    b = np.array([positive_int(k, f"{what}: each batch size") for k in pairs], dtype=np.float64)
    ms = np.array([number(v, f"{what}: the latency (ms) of batch {k}", minimum=0) for k, v in pairs.items()])
    if not (ms > 0).all():
        raise ArgumentError(f"{what}: every latency must be above 0 ms (a batch takes some time), got {ms.tolist()}")
    order = np.argsort(b)
    return b[order], ms[order]


def simulate_batching(latency_by_batch: Any, arrival_rate_per_s: float, delays_ms: Any,
                      max_batch_size: int | None = None, requests: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Predicted p50/p99/mean latency, throughput, mean batch and utilisation for each delay T in
    ``delays_ms`` (frame ``batching_simulation``, one row per T). ``latency_by_batch``: see
    :func:`latency_curve` (a load run's ``requests`` frame gives the batcher's own curve);
    ``arrival_rate_per_s``: Poisson arrivals of one-sample requests; ``max_batch_size``: default the largest
    measured batch size (and at most that); ``requests`` simulated per T, the same arrivals for every T
    (``seed``)."""
    sizes, ms = latency_curve(latency_by_batch)
    rate = number(arrival_rate_per_s, "simulate_batching: arrival_rate_per_s", minimum=0)
    if not rate > 0:
        raise ArgumentError("simulate_batching: arrival_rate_per_s must be above 0 requests per second")
    delays = number_list(delays_ms, "simulate_batching: delays_ms", minimum=0)
    mbs = optional_positive_int(max_batch_size, "simulate_batching: max_batch_size")
    if mbs is not None and mbs > sizes[-1]:
        raise BatchSizeError(f"simulate_batching: max_batch_size {mbs} is beyond the curve (largest measured batch "
                             f"{int(sizes[-1])}); measure the latency at {mbs} too, or pass a smaller max_batch_size")
    mbs = mbs or int(sizes[-1])
    n = positive_int(requests, "simulate_batching: requests", maximum=MAX_REQUESTS)
    seed = integer(seed, "simulate_batching: seed", minimum=0)
    arrivals_ms = np.cumsum(np.random.default_rng(seed).exponential(1e3 / rate, n))
    service = np.interp(np.arange(mbs + 1, dtype=np.float64), sizes, ms)     # ms per batch size (flat below)
    stable = rate < mbs / (service[mbs] / 1e3)
    rows = []
    for t in delays:
        lat, batches, busy = _simulate(arrivals_ms, service, mbs, t)
        span_ms = float(arrivals_ms[-1] - arrivals_ms[0] + lat[-1]) if n > 1 else float(lat[-1])
        rows.append({"source": "simulated", "delay_ms": t, "arrival_rate_per_s": rate, "max_batch_size": mbs,
                     "requests": n, "latency_p50_ms": float(np.percentile(lat, 50)),
                     "latency_p99_ms": float(np.percentile(lat, 99)), "latency_mean_ms": float(lat.mean()),
                     "throughput_per_s": n / (span_ms / 1e3) if span_ms > 0 else math.nan,
                     "mean_batch": n / batches, "utilisation_pct": 100.0 * busy / span_ms if span_ms > 0 else math.nan,
                     "stable": bool(stable)})
    return BATCHING_SIMULATION.frame(rows, {"curve_batch_sizes": sizes.astype(int).tolist(),
                                            "curve_latency_ms": ms.tolist(), "seed": seed})


def _simulate(arrivals: np.ndarray, service: np.ndarray, mbs: int, delay: float) -> tuple:
    """(latency of each request in ms, batches run, busy ms) of the batching policy on ``arrivals``
    (plain Python floats: a batch costs a few list operations, 300,000 requests about 0.2 s)."""
    arr = arrivals.tolist()
    svc = service.tolist()
    n = len(arr)
    ends = [0.0] * n
    inf = math.inf
    free, i, batches, busy = -inf, 0, 0, 0.0
    while i < n:
        last = i + mbs - 1
        opened = arr[i] + delay
        start = opened if last >= n or arr[last] > opened else arr[last]
        if free > start:
            start = free
        j, stop = i + 1, min(n, i + mbs)
        while j < stop and arr[j] <= start:
            j += 1
        s = svc[j - i]
        end = start + s
        ends[i:j] = [end] * (j - i)
        free, i, batches, busy = end, j, batches + 1, busy + s
    return np.asarray(ends) - arrivals, batches, busy
