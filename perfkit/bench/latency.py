"""Host-timed latency of synchronous inferences (guide 1.2: a wall clock around a call that waits)."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..arguments import positive_int
from ..frames.stats import latency_stats as summarise
from ._args import check_time_inference, latency_samples


def time_inference(context: Any, inputs: dict, batch_size: int | None = None, warmup: int = 2,
                   min_iterations: int = 5, min_time_s: float = 0.2, max_iterations: int = 10_000) -> np.ndarray:
    """Runs ``context.execute`` repeatedly; returns per-inference latencies in ms (float64).

    Runs ``warmup`` untimed inferences, then at least ``min_iterations`` and until ``min_time_s``
    of timed work has passed (at most ``max_iterations``). ``execute`` waits for the device, so
    each sample is a complete inference.
    """
    check_time_inference(context, inputs, batch_size, warmup, min_iterations, min_time_s, max_iterations)
    for _ in range(warmup):
        context.execute(inputs, batch_size)
    samples = []
    start = time.perf_counter()
    while len(samples) < max_iterations and (len(samples) < min_iterations or
                                              time.perf_counter() - start < min_time_s):
        t0 = time.perf_counter_ns()
        context.execute(inputs, batch_size)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return np.asarray(samples, dtype=np.float64)


def latency_stats(ms: np.ndarray, batch_size: int) -> dict:
    ms = latency_samples(ms, "latency_stats")
    batch_size = positive_int(batch_size, "latency_stats: batch_size")
    s = summarise(ms, percentiles=(90,))
    median = s["median"]
    return {"iterations": s["count"], "latency_mean_ms": s["mean"], "latency_median_ms": median,
            "latency_p90_ms": s["p90"], "latency_min_ms": s["min"],
            "latency_max_ms": s["max"], "throughput_per_s": batch_size / median * 1e3 if median > 0 else 0.0}
