"""Throughput with several execution contexts, streams and worker threads (guide 2.2).

``throughput(engine, batch_size, streams=N, threads=M)`` creates N execution contexts, each with its
own stream, pinned host buffers and events (measure's ``_Slot``), and M worker threads. Worker ``t``
owns the contexts ``i`` with ``i % M == t``: it keeps each of its streams busy (submit, then collect the
oldest) and waits only on its own streams' events, never on the device as a whole, so that no thread
stalls another. Every query is a row of the ``queries`` frame with the stream it ran on; the summary
gives throughput (with an interval over time windows), per-query latency (with the interval of its
median) and how much the queries overlapped.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..arguments import flag, number
from ..errors import ArgumentError
from ..frames.schemas import QUERIES
from ..frames.stats import latency_stats, median_ci
from ..log import get_logger
from ._args import percentile_list
from ._load_args import batch_arg, engine_arg, host_inputs, streams_threads
from .measure import _copy_share, _diagnose, _Slot, summary_frame, summary_value

_log = get_logger("bench")
WINDOWS = 10            # time windows of the timed phase, for the throughput's interval


@dataclass
class Throughput:
    """The result of :func:`throughput`: ``queries`` (one row per inference, ``stream`` = the context and
    stream it ran on; ``attrs["thread_of_stream"]`` the worker thread of each stream), ``summary``
    (metric, value, shown, unit, meaning) and ``meta``."""
    queries: pd.DataFrame
    summary: pd.DataFrame
    meta: dict = field(default_factory=dict)
    diagnoses: pd.DataFrame | None = None   # finding, severity, value, threshold, explanation (as measure's)
    gpu: pd.DataFrame | None = None         # NVML samples of the timed phase (frame gpu_samples; empty on the CPU)

    def value(self, metric: str) -> float:
        """The summary's value of ``metric`` (one of ``summary["metric"]``)."""
        return summary_value(self.summary, metric, "Throughput.value")

    def __repr__(self) -> str:
        m = self.meta
        return (f"<Throughput {m.get('engine')} batch {m.get('batch_size')}, {m.get('streams')} stream(s), "
                f"{m.get('threads')} thread(s): {self.value('throughput_per_s'):.1f} samples/s, median latency "
                f"{self.value('latency_median_ms'):.3f} ms>")


def throughput(engine: Any, batch_size: int | None = None, streams: int = 1, threads: int | None = None,
               duration_s: float = 2.0, warmup_ms: float = 200.0, inputs: dict | None = None,
               include_transfers: bool = True, percentiles: Sequence[float] = (90, 95, 99),
               gpu_metrics: bool = True, cuda_graph: bool = True) -> Throughput:
    """Runs ``streams`` execution contexts of ``engine``, each on its own stream, fed by ``threads`` worker
    threads (default: one per stream; each thread owns at least one context and its stream), for
    ``duration_s`` seconds after ``warmup_ms`` of warm-up. ``engine``: an Engine, or an EngineSet (its
    engine for ``batch_size``). ``inputs``: host arrays with at least ``batch_size`` samples (default:
    ``perfkit.models.sample_input``). With ``include_transfers`` every query copies its inputs in from
    page-locked host memory and its outputs back. ``gpu_metrics``: sample clocks, power and utilisation
    (NVML) while timing, on a GPU. ``cuda_graph``: whether the contexts replay CUDA graphs once warm (CUDA
    only; False launches every layer from Python)."""
    what = "throughput"
    eng = engine_arg(engine, what, batch_size if isinstance(batch_size, int) and batch_size > 0 else None)
    batch = batch_arg(batch_size, eng.max_batch_size, what) or eng.max_batch_size
    n, m = streams_threads(streams, threads, what)
    duration_s = number(duration_s, f"{what}: duration_s", minimum=0, maximum=24 * 3600)
    warmup_ms = number(warmup_ms, f"{what}: warmup_ms", minimum=0, maximum=3600e3)
    include_transfers = flag(include_transfers, f"{what}: include_transfers")
    pcts = percentile_list(percentiles, f"{what}: percentiles")
    gpu_metrics = flag(gpu_metrics, f"{what}: gpu_metrics")
    cuda_graph = flag(cuda_graph, f"{what}: cuda_graph")
    from ..models import sample_input
    host = host_inputs(eng, inputs if inputs is not None else sample_input(eng, batch), batch, what)
    return _run(eng, batch, n, m, duration_s, warmup_ms, host, include_transfers, pcts, gpu=gpu_metrics,
                graphs=cuda_graph)


def _run(eng: Any, batch: int, n: int, m: int, duration_s: float, warmup_ms: float, host: dict,
         transfers: bool, pcts: list, run_id: str | None = None, gpu: bool = False,
         graphs: bool = True) -> Throughput:
    from ..device import cpu_snapshot, host_load, other_busy_cores
    from ..profiling.nvml import NvmlSampler
    dev = eng.device
    sampler = NvmlSampler(dev.nvml_index) if gpu and dev.kind == "cuda" else None
    contexts = [eng.create_execution_context(cuda_graph=graphs) for _ in range(n)]
    try:
        slots = [_Slot(c, dev, host, batch) for c in contexts]
        for sl in slots:            # one context at a time, on this thread: on CUDA the second run captures the
            for _ in range(2):      # context's graph, and no two threads ever capture at once
                sl.submit(transfers)
                sl.wait()
        owned = [[i for i in range(n) if i % m == t] for t in range(m)]
        blas = dev.apply_threads(n) if dev.kind == "cpu" else 0
        load = host_load()
        before = cpu_snapshot()
        try:
            rows, wall = _timed(slots, owned, duration_s, warmup_ms, transfers, sampler)
        finally:
            if dev.kind == "cpu":
                dev.apply_threads()
        load["host_other_busy_cores"] = other_busy_cores(before, cpu_snapshot())
    finally:
        for c in contexts:
            c.close()
        for s in (locals().get("slots") or ()):
            close = getattr(s.stream, "close", None)
            if close is not None:
                close()
    run_id = run_id or uuid.uuid4().hex[:8]
    for r in rows:
        r["run_id"] = run_id
    queries = QUERIES.frame(sorted(rows, key=lambda r: r["enqueue_start_ns"]))
    queries["query"] = np.arange(len(queries), dtype=np.int64)
    thread_of = [i % m for i in range(n)]
    meta = {"run_id": run_id, "engine": eng.name, "engine_id": eng.id, "device": dev.spec, "device_name": dev.name,
            "precision": eng.precision, "batch_size": batch, "streams": n, "threads": m,
            "thread_of_stream": thread_of, "include_transfers": transfers, "blas_threads": blas,
            "cuda_graph": bool(graphs and dev.kind == "cuda"), **load}
    queries.attrs.update(meta)
    summary = _summary(queries, batch, wall, pcts, n, m, blas, load)
    samples = sampler.frame if sampler is not None else NvmlSampler().frame
    diagnoses = _diagnose(queries, summary, samples, transfers, dev.kind, blas * n)
    _log.info("throughput %s batch %d, %d stream(s), %d thread(s): %.1f samples/s over %d queries", eng.name,
              batch, n, m, float(summary.set_index("metric").loc["throughput_per_s", "value"]), len(queries))
    return Throughput(queries, summary, meta, diagnoses, samples)


def _timed(slots: list, owned: list, duration_s: float, warmup_ms: float, transfers: bool,
           sampler: Any = None) -> tuple:
    """Runs one worker thread per entry of ``owned``; returns (rows, (wall start ns, wall end ns)). ``sampler``
    (an NvmlSampler or None) runs over the timed phase."""
    clock: dict = {}

    def begin() -> None:
        if sampler is not None:
            sampler.start()
        clock.update(t0=time.perf_counter(), wall0=time.perf_counter_ns())
    start = threading.Barrier(len(owned) + 1, action=begin)
    errors: list = []
    results: list = [[] for _ in owned]

    def worker(t: int) -> None:
        mine = [slots[i] for i in owned[t]]
        try:
            deadline = time.perf_counter() + warmup_ms / 1e3
            while time.perf_counter() < deadline:       # warm-up on this thread's own contexts
                for sl in mine:
                    sl.submit(transfers)
                for sl in mine:
                    sl.wait()
        except BaseException as exc:
            errors.append(exc)
        start.wait()
        if errors:
            return
        rows = results[t]
        try:
            end = clock["t0"] + duration_s
            k = 0
            while True:
                sl = mine[k % len(mine)]
                if sl.busy:
                    rows.append(sl.collect(0))
                if (time.perf_counter() >= end and k >= len(mine)) or errors:   # another worker failed: stop
                    break
                sl.submit(transfers, owned[t][k % len(mine)])
                k += 1
            for sl in mine:
                if sl.busy:
                    rows.append(sl.collect(0))
        except BaseException as exc:
            errors.append(exc)
            for sl in mine:
                try:
                    sl.wait()
                except BaseException:
                    pass

    workers = [threading.Thread(target=worker, args=(t,), name=f"perfkit-throughput-{t}", daemon=True)
               for t in range(len(owned))]
    for w in workers:
        w.start()
    start.wait()                            # every thread warmed up: the timed phase starts for all at once
    for w in workers:
        w.join()
    wall1 = time.perf_counter_ns()
    if sampler is not None and "wall0" in clock:
        sampler.stop()
    if errors:
        raise errors[0]
    return [r for rs in results for r in rs], (clock["wall0"], wall1)


def overlap(queries: pd.DataFrame) -> tuple[float, float]:
    """(mean queries in flight, % of the time with two or more in flight) over the span of ``queries``,
    each in flight from ``enqueue_start_ns`` to ``end_ns``."""
    if not len(queries):
        return float("nan"), float("nan")
    s = queries["enqueue_start_ns"].to_numpy(np.int64)
    e = queries["end_ns"].to_numpy(np.int64)
    t = np.concatenate([s, e])
    d = np.concatenate([np.ones_like(s), -np.ones_like(e)])
    order = np.lexsort((d, t))                  # an end before a start at the same instant
    t, d = t[order], d[order]
    level = np.cumsum(d)[:-1]
    dt = np.diff(t).astype(np.float64)
    span = float(t[-1] - t[0])
    if span <= 0:
        return float("nan"), float("nan")
    return float((level * dt).sum() / span), float(100.0 * dt[level >= 2].sum() / span)


def window_rates(end_ns: np.ndarray, samples: int, wall: tuple, windows: int = WINDOWS) -> np.ndarray:
    """Samples per second completed in each of ``windows`` equal slices of the wall time (fewer windows
    when there are fewer than 5 queries a window)."""
    w = int(max(1, min(windows, len(end_ns) // 5)))
    edges = np.linspace(wall[0], wall[1], w + 1)
    counts = np.histogram(end_ns, bins=edges)[0]
    width_s = (wall[1] - wall[0]) / 1e9 / w
    return counts * samples / width_s if width_s > 0 else np.full(w, np.nan)


def _summary(q: pd.DataFrame, batch: int, wall: tuple, pcts: list, n: int, m: int, blas: int = 0,
             host: dict | None = None) -> pd.DataFrame:
    wall_ms = (wall[1] - wall[0]) / 1e6
    st = latency_stats(q["latency_ms"], pcts)
    host_lat = latency_stats(q["host_latency_ms"], pcts)
    lo, hi = median_ci(window_rates(q["end_ns"].to_numpy(), batch, wall))
    inflight, overlap_pct = overlap(q)
    tput = len(q) * batch / (wall_ms / 1e3) if wall_ms > 0 else float("nan")
    rows = [("queries", len(q), "", "timed inferences"),
            ("streams", n, "", "execution contexts, one stream each"),
            ("threads", m, "", "worker threads feeding them"),
            ("throughput_per_s", tput, "1/s", "samples per second over the wall time of the timed phase"),
            ("throughput_ci_low_per_s", lo, "1/s", "95% interval of the median throughput over 10 time windows: "
                                                   "low (NaN with fewer than 6 windows)"),
            ("throughput_ci_high_per_s", hi, "1/s", "same interval: high"),
            ("throughput_qps", len(q) / (wall_ms / 1e3) if wall_ms > 0 else float("nan"), "1/s",
             "inferences per second"),
            ("latency_median_ms", st["median"], "ms", "device-timed latency per query (H2D + compute + D2H): median"),
            ("latency_median_ci_low_ms", st["median_ci_low"], "ms", "95% interval of the median latency: low"),
            ("latency_median_ci_high_ms", st["median_ci_high"], "ms", "95% interval of the median latency: high")]
    rows += [(f"latency_p{p:g}_ms", st[f"p{p:g}"], "ms", f"{p:g}th percentile of the latency") for p in pcts]
    rows += [("host_latency_median_ms", host_lat["median"], "ms", "host wall clock from submission to observed end"),
             ("enqueue_median_ms", q["enqueue_ms"].median(), "ms", "host time to submit one inference: median"),
             ("h2d_median_ms", q["h2d_ms"].median(), "ms", "input copy: median"),
             ("compute_median_ms", q["compute_ms"].median(), "ms", "network execution per query: median"),
             ("d2h_median_ms", q["d2h_ms"].median(), "ms", "output copy: median"),
             ("copy_share_pct", _copy_share(q), "%", "H2D + D2H share of a query's device-timed latency: median"),
             ("in_flight_mean", inflight, "", "queries in flight on average (1 = no overlap)"),
             ("overlap_pct", overlap_pct, "%", "share of the time with two or more queries in flight"),
             ("total_host_wall_ms", wall_ms, "ms", "wall time of the timed phase"),
             ("blas_threads", blas, "", "BLAS threads per stream on the CPU device (0 on a GPU)")]
    return summary_frame(rows, host)


def throughput_sweep(engine: Any, batch_size: int | None = None, streams: Sequence[int] = (1, 2, 4, 8),
                     threads: Sequence[int] | None = None, duration_s: float = 1.0, rounds: int = 3,
                     warmup_ms: float = 100.0, include_transfers: bool = True) -> pd.DataFrame:
    """Throughput against streams and threads (guide 2.2: where it saturates). Every configuration
    (each count in ``streams`` with each count in ``threads``; ``threads=None``: one thread per stream;
    configurations with more threads than streams are skipped) runs for ``duration_s`` in each of
    ``rounds`` rounds, in an order rotated every round, so that a change of machine load touches every
    configuration alike. One row per configuration (frame ``throughput``): the median of its round
    throughputs with the interval of that median (from 6 rounds) and its speedup over 1 stream and
    1 thread (the median of per-round ratios)."""
    from ..frames.schemas_load import THROUGHPUT
    from ._load_args import int_list
    what = "throughput_sweep"
    eng = engine_arg(engine, what, batch_size if isinstance(batch_size, int) and batch_size > 0 else None)
    batch = batch_arg(batch_size, eng.max_batch_size, what) or eng.max_batch_size
    ns = list(dict.fromkeys(int_list(streams, f"{what}: streams", maximum=64)))
    ms = None if threads is None else list(dict.fromkeys(int_list(threads, f"{what}: threads", maximum=64)))
    configs = [(n, n) for n in ns] if ms is None else [(n, m) for n in ns for m in ms if m <= n]
    if not configs:
        raise ArgumentError(f"{what}: no configuration has threads <= streams (streams {ns}, threads {ms}); each "
                            "thread owns at least one stream")
    duration_s = number(duration_s, f"{what}: duration_s", minimum=0, maximum=3600)
    from ..arguments import positive_int
    rounds = positive_int(rounds, f"{what}: rounds", maximum=1000)
    warmup_ms = number(warmup_ms, f"{what}: warmup_ms", minimum=0, maximum=3600e3)
    include_transfers = flag(include_transfers, f"{what}: include_transfers")
    from ..models import sample_input
    host = sample_input(eng, batch)
    run_id = uuid.uuid4().hex[:8]
    runs: dict = {c: [] for c in configs}
    for r in range(rounds):
        k = r % len(configs)
        for c in configs[k:] + configs[:k]:
            runs[c].append(_run(eng, batch, c[0], c[1], duration_s, warmup_ms, host, include_transfers, [99],
                                run_id))
    base = runs.get((1, 1))
    rows = []
    for (n, m), rs in runs.items():
        tput = np.array([x.value("throughput_per_s") for x in rs])
        lo, hi = median_ci(tput)
        speed = np.nan if base is None else float(np.median(tput / [b.value("throughput_per_s") for b in base]))
        lat = latency_stats(pd.concat([x.queries["latency_ms"] for x in rs]), [99])
        rows.append({"run_id": run_id, "engine": eng.name, "device": eng.device.spec, "precision": eng.precision,
                     "batch_size": batch, "streams": n, "threads": m, "rounds": rounds,
                     "queries": int(sum(len(x.queries) for x in rs)), "throughput_per_s": float(np.median(tput)),
                     "throughput_ci_low_per_s": lo, "throughput_ci_high_per_s": hi, "speedup": speed,
                     "latency_median_ms": lat["median"], "latency_median_ci_low_ms": lat["median_ci_low"],
                     "latency_median_ci_high_ms": lat["median_ci_high"], "latency_p99_ms": lat["p99"],
                     "in_flight_mean": float(np.mean([x.value("in_flight_mean") for x in rs])),
                     "overlap_pct": float(np.mean([x.value("overlap_pct") for x in rs])),
                     "blas_threads": int(rs[0].meta["blas_threads"]),
                     "host_load_1m": float(rs[0].meta.get("host_load_1m", np.nan)),
                     "host_other_busy_cores": _mean_known([x.meta.get("host_other_busy_cores") for x in rs])})
    return THROUGHPUT.frame(rows, {"run_id": run_id, "engine": eng.name, "device": eng.device.spec,
                                   "device_name": eng.device.name, "precision": eng.precision,
                                   "batch_size": batch, "include_transfers": include_transfers})


def _mean_known(values: list) -> float:
    """The mean of the values that were measured (not None or NaN); NaN when none was."""
    known = [float(v) for v in values if v is not None and v == v]
    return float(np.mean(known)) if known else float("nan")
