"""Load generation against a :class:`DynamicBatcher` (guide 2.1): open loop at a constant rate or as a
Poisson process, or closed loop with a fixed number of clients.

Open loop: one generator thread submits each request at its scheduled time, whether or not earlier
ones finished (how independent users arrive; ``late_ms`` records how far the generator fell behind).
Closed loop: ``concurrency`` client threads each send a request, wait for it and send the next (a
benchmark's usual shape; the arrival rate then follows the service). Every request becomes a row of the
``load_requests`` frame: its schedule, queue time, the batch and engine it ran in, compute time and
latency.
"""
from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..arguments import integer, number, one_of, optional_positive_int, positive_int
from ..errors import ArgumentError
from ..frames.schemas_load import BATCHING_SIMULATION, LOAD_REQUESTS
from ..frames.stats import latency_stats
from ..frames.units import with_shown
from ..log import get_logger
from ._args import percentile_list
from ._load_args import MAX_CLIENTS
from .batcher import DynamicBatcher
from .measure import summary_value

_log = get_logger("bench.load")
PATTERNS = ("constant", "poisson", "closed")
MAX_REQUESTS = 10_000_000


@dataclass
class LoadResult:
    """The result of :func:`generate_load`: ``requests`` (frame ``load_requests``), ``summary`` (metric, value,
    shown, unit, meaning) and ``meta``."""
    requests: pd.DataFrame
    summary: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def value(self, metric: str) -> float:
        """The summary's value of ``metric`` (one of ``summary["metric"]``)."""
        return summary_value(self.summary, metric, "LoadResult.value")

    def point(self) -> pd.DataFrame:
        """This run as one ``measured`` row of the ``batching_simulation`` frame, to set beside
        :func:`simulate_batching`'s prediction (``plot_batching(simulation, measured)``); ``stable`` is
        False when fewer requests were answered per second than were submitted (by over 10%): the queue grew."""
        v = self.value
        return BATCHING_SIMULATION.frame([{
            "source": "measured", "delay_ms": self.meta["max_delay_ms"], "arrival_rate_per_s": v("offered_rate_per_s"),
            "max_batch_size": self.meta["max_batch_size"], "requests": int(v("requests")),
            "latency_p50_ms": v("latency_p50_ms"), "latency_p99_ms": v("latency_p99_ms"),
            "latency_mean_ms": v("latency_mean_ms"), "throughput_per_s": v("throughput_per_s"),
            "mean_batch": v("mean_batch"), "utilisation_pct": v("utilisation_pct"),
            "stable": not v("achieved_rate_per_s") > 1.1 * v("throughput_per_s")}], {"run_id": self.meta["run_id"]})

    def __repr__(self) -> str:
        return (f"<LoadResult {self.meta.get('pattern')} {self.meta.get('rate_per_s') or ''} -> "
                f"{self.value('throughput_per_s'):.1f} requests/s, p50 {self.value('latency_p50_ms'):.3f} ms, "
                f"p99 {self.value('latency_p99_ms'):.3f} ms, mean batch {self.value('mean_batch'):.2f}>")


def generate_load(batcher: Any, inputs: dict | None = None, pattern: str = "poisson", rate_per_s: float | None = None,
         concurrency: int | None = None, duration_s: float = 2.0, requests: int | None = None, seed: int = 0,
         percentiles: Sequence[float] = (50, 90, 99)) -> LoadResult:
    """Sends one-sample requests to ``batcher`` for ``duration_s`` seconds (or until ``requests`` were
    sent, whichever comes first) and waits for every answer. ``pattern``: ``"constant"`` or
    ``"poisson"`` at ``rate_per_s`` (open loop), or ``"closed"`` with ``concurrency`` client threads.
    ``inputs``: name -> array of samples (leading dimension), cycled through (default: 64 samples of
    ``perfkit.models.sample_input``). The batcher stays open."""
    if not isinstance(batcher, DynamicBatcher):
        raise ArgumentError(f"generate_load: batcher must be a perfkit.bench.DynamicBatcher, not "
                            f"{type(batcher).__name__}")
    if batcher.closed:
        raise ArgumentError(f"generate_load: batcher {batcher.name!r} was closed; make a new DynamicBatcher")
    pattern = one_of(pattern, PATTERNS, "generate_load: pattern")
    if pattern == "closed":
        if rate_per_s is not None:
            raise ArgumentError("generate_load: rate_per_s is for the open-loop patterns; a closed loop takes "
                                "concurrency= (clients that each wait for their answer)")
        clients = positive_int(concurrency, "generate_load: concurrency (client threads of the closed loop)",
                               maximum=MAX_CLIENTS)
        rate = math.nan
    else:
        if concurrency is not None:
            raise ArgumentError(f"generate_load: concurrency is for pattern='closed'; the {pattern} pattern takes "
                                "rate_per_s=")
        rate = number(rate_per_s, f"generate_load: rate_per_s (requests per second of the {pattern} pattern)",
                      minimum=0)
        if not rate > 0:
            raise ArgumentError("generate_load: rate_per_s must be above 0 requests per second")
        clients = 1
    duration_s = number(duration_s, "generate_load: duration_s", minimum=0, maximum=24 * 3600)
    limit = optional_positive_int(requests, "generate_load: requests")
    if limit is not None and limit > MAX_REQUESTS:
        raise ArgumentError(f"generate_load: requests must be at most {MAX_REQUESTS}, not {limit}")
    seed = integer(seed, "generate_load: seed", minimum=0)
    pcts = sorted(set(percentile_list(percentiles, "generate_load: percentiles")) | {50.0, 99.0})
    samples = _samples(batcher, inputs)
    run_id = uuid.uuid4().hex[:8]
    if pattern == "closed":
        sent = _closed(batcher, samples, clients, duration_s, limit)
    else:
        sent = _open(batcher, samples, pattern, rate, duration_s, limit, seed)
    frame = _frame(batcher, sent, run_id)
    meta = {"run_id": run_id, "pattern": pattern, "rate_per_s": None if pattern == "closed" else rate,
            "concurrency": clients if pattern == "closed" else None, "duration_s": duration_s,
            "max_batch_size": batcher.max_batch_size, "max_delay_ms": batcher.max_delay_ms,
            "instances": batcher.instances, "batcher": batcher.name, "device": batcher.device.spec,
            "engine": frame.attrs.get("engine", "")}
    frame.attrs.update(meta)
    result = LoadResult(frame, _summary(frame, rate, duration_s, batcher.instances, pcts), meta)
    _log.info("load %s: %r", batcher.name, result)
    return result


def _samples(batcher: DynamicBatcher, inputs: Any) -> list:
    """The request payloads: a list of {name: one sample}."""
    if inputs is None:
        from ..models import sample_input
        eng = next(iter(batcher._engines.values()))
        inputs = sample_input(eng, 64)
    if not isinstance(inputs, dict) or sorted(inputs) != sorted(batcher.input_names):
        got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ArgumentError(f"generate_load: inputs must be a dict with exactly the engine's inputs "
                            f"{batcher.input_names} (arrays of samples, leading dimension), got {got}")
    counts = {getattr(a, "shape", (0,))[0] if getattr(a, "ndim", 0) else 0 for a in inputs.values()}
    if len(counts) != 1 or 0 in counts:
        raise ArgumentError("generate_load: every input needs the same number (at least 1) of samples along its first "
                            "dimension")
    n = counts.pop()
    samples = [{k: a[i] for k, a in inputs.items()} for i in range(n)]
    batcher._check(samples[0])          # shapes and dtypes, before any request is sent
    return samples


def _open(batcher: DynamicBatcher, samples: list, pattern: str, rate: float, duration_s: float,
          limit: int | None, seed: int) -> list:
    """Submits at scheduled times from this thread; returns [(future, client, scheduled_ns, submit_ns)]."""
    rng = np.random.default_rng(seed)
    gap_ns = 1e9 / rate
    sent: list = []
    t0 = time.perf_counter_ns() + 1_000_000        # 1 ms to start
    end = t0 + int(duration_s * 1e9)
    due = float(t0)
    while (limit is None or len(sent) < limit) and due < end:
        wait = (due - time.perf_counter_ns()) / 1e9
        if wait > 0:            # sleep, never spin: a spinning thread holds the GIL the batcher needs
            time.sleep(wait)
        submit = time.perf_counter_ns()
        fut = batcher.submit(samples[len(sent) % len(samples)])
        sent.append((fut, 0, int(due), submit))
        due += rng.exponential(gap_ns) if pattern == "poisson" else gap_ns
    if not sent:                        # at least one request, even for a zero duration
        submit = time.perf_counter_ns()
        sent.append((batcher.submit(samples[0]), 0, submit, submit))
    return sent


def _closed(batcher: DynamicBatcher, samples: list, clients: int, duration_s: float, limit: int | None) -> list:
    lock = threading.Lock()
    sent: list = []
    errors: list = []
    end = time.perf_counter_ns() + int(duration_s * 1e9)
    go = threading.Barrier(clients)

    def client(c: int) -> None:
        try:
            go.wait()
            while True:
                with lock:
                    k = len(sent)
                    if (limit is not None and k >= limit) or (time.perf_counter_ns() >= end and k >= clients):
                        return
                    ready = time.perf_counter_ns()
                    fut = batcher.submit(samples[k % len(samples)])
                    sent.append((fut, c, ready, ready))
                fut.result()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,), name=f"perfkit-load-client-{c}", daemon=True)
               for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sent


def _frame(batcher: DynamicBatcher, sent: list, run_id: str) -> pd.DataFrame:
    for fut, *_ in sent:
        fut.result()                    # every answer, or the first error
    done = batcher.requests().set_index("request")
    lost = [f.request_id for f, *_ in sent if f.request_id not in done.index]
    if lost:
        from ..errors import ExecutionError
        raise ExecutionError(f"generate_load: {len(lost)} request(s) answered but no longer in the batcher's "
                             "records (it keeps the last perfkit.bench.batcher.RECORDS_KEPT); send fewer requests "
                             "per run")
    rows = []
    for k, (fut, client, scheduled, submit) in enumerate(sent):
        r = done.loc[fut.request_id]
        rows.append({"run_id": run_id, "request": k, "client": client, "scheduled_ns": scheduled,
                     "submit_ns": submit, "late_ms": (submit - scheduled) / 1e6, "start_ns": int(r["start_ns"]),
                     "end_ns": int(r["end_ns"]), "queue_ms": float(r["queue_ms"]), "batch": int(r["batch"]),
                     "batch_size": int(r["batch_size"]), "engine_batch_size": int(r["engine_batch_size"]),
                     "compute_ms": float(r["compute_ms"]), "latency_ms": float(r["latency_ms"])})
    return LOAD_REQUESTS.frame(rows, {"engine": done.attrs.get("engine", "")})


def _summary(f: pd.DataFrame, rate: float, duration_s: float, instances: int, pcts: list) -> pd.DataFrame:
    st = latency_stats(f["latency_ms"], pcts)
    span_s = (f["end_ns"].max() - f["submit_ns"].min()) / 1e9
    sub_s = (f["submit_ns"].max() - f["submit_ns"].min()) / 1e9
    batches = f.drop_duplicates("batch")
    busy_ms = float(batches["compute_ms"].sum())
    rows = [("requests", len(f), "", "requests sent and answered"),
            ("offered_rate_per_s", rate, "1/s", "requests per second asked for (NaN for a closed loop)"),
            ("achieved_rate_per_s", (len(f) - 1) / sub_s if sub_s > 0 else math.nan, "1/s",
             "requests per second actually submitted"),
            ("throughput_per_s", len(f) / span_s if span_s > 0 else math.nan, "1/s",
             "requests answered per second, first submission to last answer"),
            ("latency_mean_ms", st["mean"], "ms", "request latency (submission to answer): mean"),
            ("latency_median_ci_low_ms", st["median_ci_low"], "ms", "95% interval of the median latency: low"),
            ("latency_median_ci_high_ms", st["median_ci_high"], "ms", "95% interval of the median latency: high")]
    rows += [(f"latency_p{p:g}_ms", st[f"p{p:g}"], "ms", f"{p:g}th percentile of the request latency") for p in pcts]
    rows += [("queue_median_ms", f["queue_ms"].median(), "ms", "submission to batch start: median"),
             ("compute_median_ms", batches["compute_ms"].median(), "ms", "batch run time: median over batches"),
             ("mean_batch", len(f) / len(batches), "", "mean requests per batch"),
             ("batches", len(batches), "", "batches run"),
             ("utilisation_pct", 100.0 * busy_ms / (span_s * 1e3 * instances) if span_s > 0 else math.nan, "%",
              "share of the time the batcher's instances were running a batch"),
             ("late_p99_ms", f["late_ms"].quantile(0.99), "ms",
              "99th percentile of how late requests were submitted (the generator falling behind)")]
    return with_shown(pd.DataFrame([{"metric": k, "value": float(v), "unit": u, "meaning": d}
                                    for k, v, u, d in rows]))
