"""trtexec-style measurement (guide chapter 1): many inferences on one or more streams, each with
host timestamps (guide 1.2) and device events around the input copy, the network and the output copy
(guide 1.3), summarised into throughput and latency statistics with diagnoses."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..arguments import one_of
from ..device import cpu_snapshot, host_load, other_busy_cores
from ..frames.schemas import DIAGNOSES, QUERIES
from ..frames.stats import latency_stats, spread_pct
from ..frames.units import with_shown
from ..profiling.summary import disturbances
from ._args import check_host_inputs, check_measure


#: the latency's robust coefficient of variation (``frames.stats.spread_pct``: IQR / 1.349 / median, in %)
#: above which a measurement is called unstable (TREx's 3% noise rule, a little tighter since measure()
#: times many inferences; one outlying inference does not move it)
UNSTABLE_CV_PCT = 2.5


@dataclass
class Measurement:
    queries: pd.DataFrame
    summary: pd.DataFrame      # metric, value, shown (the value in human units), unit, meaning
    diagnoses: pd.DataFrame
    gpu: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def value(self, metric: str) -> float:
        """The summary's value of ``metric`` (one of ``summary["metric"]``)."""
        return summary_value(self.summary, metric, "Measurement.value")

    def __repr__(self) -> str:
        s = self.summary.set_index("metric")["value"]
        return (f"<Measurement {self.meta.get('engine')} batch {self.meta.get('batch_size')} x "
                f"{self.meta.get('streams')} stream(s): {s['throughput_per_s']:.1f} samples/s, median latency "
                f"{s['latency_median_ms']:.3f} ms, {len(self.diagnoses)} finding(s)>")


def measure(context: Any, batch_size: int | None = None, inputs: dict | None = None, warmup_ms: float = 200,
            iterations: int = 10, duration_s: float = 3.0, percentiles: Sequence[float] = (90, 95, 99),
            include_transfers: bool = True, streams: int = 1, gpu_metrics: bool = True) -> Measurement:
    """Measures ``context`` like trtexec: warm up for ``warmup_ms``, then run at least ``iterations``
    inferences and for at least ``duration_s``, keeping up to ``streams`` in flight (one execution
    context and one stream each, guide 2.2). With ``include_transfers`` each query copies its inputs
    from page-locked host memory and its outputs back (H2D and D2H), as in production."""
    check_measure(context, batch_size, inputs, warmup_ms, iterations, duration_s, percentiles, include_transfers,
                  streams, gpu_metrics)
    from ..models import sample_input
    from ..profiling.nvml import NvmlSampler
    engine, dev = context.engine, context.device
    batch = int(batch_size or engine.max_batch_size)
    host_inputs = inputs if inputs is not None else sample_input(engine, batch)
    check_host_inputs(engine, host_inputs, batch)
    graphs = bool(getattr(context, "cuda_graph", True))     # the other contexts replay graphs as the given one does
    contexts = [context] + [engine.create_execution_context(cuda_graph=graphs) for _ in range(max(1, streams) - 1)]
    slots = [_Slot(c, dev, host_inputs, batch) for c in contexts]
    sampler = NvmlSampler(dev.nvml_index) if gpu_metrics and dev.kind == "cuda" else None
    # streams x BLAS threads within the device's threads (CPU): each stream's worker gets its share
    threads = dev.apply_threads(len(slots)) if dev.kind == "cpu" else 0
    run_id = uuid.uuid4().hex[:8]
    host = host_load()          # before timing: the load of other work, not of this measurement's own threads
    before = cpu_snapshot()
    try:
        queries, gpu, wall_ms = _timed(slots, sampler, warmup_ms, iterations, duration_s, include_transfers, run_id)
    finally:
        if dev.kind == "cpu":
            dev.apply_threads()
    host["host_other_busy_cores"] = other_busy_cores(before, cpu_snapshot())   # other processes, while timing
    summary = _summary(queries, batch, wall_ms, percentiles, threads, host)
    meta = {"run_id": run_id, "engine": engine.name, "engine_id": engine.id, "device": dev.spec,
            "device_name": dev.name, "precision": engine.precision, "batch_size": batch, "streams": len(slots),
            "include_transfers": include_transfers, "threads": threads, **host}
    queries.attrs.update(meta)
    return Measurement(queries, summary, _diagnose(queries, summary, gpu, include_transfers, dev.kind,
                                                   threads * len(slots)), gpu, meta)


def _timed(slots: list, sampler: Any, warmup_ms: float, iterations: int, duration_s: float,
           include_transfers: bool, run_id: str) -> tuple:
    """The warm-up, then the timed queries: (queries frame, GPU samples, wall time of the timed phase in ms)."""
    from ..profiling.nvml import NvmlSampler
    deadline = time.perf_counter() + warmup_ms / 1e3
    while time.perf_counter() < deadline:                  # warm-up: same path, results dropped
        for sl in slots:
            sl.submit(include_transfers)
        for sl in slots:
            sl.wait()
    if sampler:
        sampler.start()
    rows, q = [], 0
    t_start = time.perf_counter()
    wall0 = time.perf_counter_ns()
    while q < iterations or time.perf_counter() - t_start < duration_s:
        sl = slots[q % len(slots)]
        if sl.busy:
            rows.append(sl.collect(len(rows)))
        sl.submit(include_transfers, q % len(slots))
        q += 1
    for sl in slots:
        if sl.busy:
            rows.append(sl.collect(len(rows)))
    wall1 = time.perf_counter_ns()
    if sampler:
        sampler.stop()
    for r in rows:
        r["run_id"] = run_id
    queries = QUERIES.frame(sorted(rows, key=lambda r: r["enqueue_start_ns"]))
    queries["query"] = np.arange(len(queries), dtype=np.int64)
    gpu = sampler.frame if sampler else NvmlSampler().frame
    return queries, gpu, (wall1 - wall0) / 1e6


class _Slot:
    """One context, one stream, its pinned host buffers, device buffers and four events."""

    def __init__(self, ctx: Any, dev: Any, host_inputs: dict, batch: int):
        self.ctx, self.dev, self.batch = ctx, dev, batch
        self.stream = dev.create_stream()
        xp = dev.xp
        self.h_in = {n: _pinned_copy(dev, a[:batch]) for n, a in host_inputs.items()}
        eng = ctx.engine
        with dev.activate():                    # the buffers of a cuda:1 context live on cuda:1, from any thread
            self.d_in = {n: xp.empty(a.shape, a.dtype) for n, a in self.h_in.items()}
            self.d_out = {n: xp.empty((batch,) + eng.get_binding_shape(n), eng.get_binding_dtype(n))
                          for n in eng.output_names}
        for n in self.h_in:
            dev.to_device(self.h_in[n], out=self.d_in[n])
        self.h_out = {n: dev.pinned_empty(a.shape, a.dtype) for n, a in self.d_out.items()}
        self.ev = [dev.create_event() for _ in range(4)]
        self.busy = False
        self.index = 0

    def submit(self, transfers: bool, index: int = 0) -> None:
        s, ev, dev = self.stream, self.ev, self.dev
        self.index = index
        self.t0 = time.perf_counter_ns()
        ev[0].record(s)
        if transfers:
            for n, h in self.h_in.items():
                dev.to_device(h, stream=s, out=self.d_in[n])
        ev[1].record(s)
        self.ctx.enqueue({**self.d_in, **self.d_out}, s)
        ev[2].record(s)
        if transfers:
            for n, d in self.d_out.items():
                dev.to_host(d, stream=s, out=self.h_out[n])
        ev[3].record(s)
        self.t1 = time.perf_counter_ns()
        self.busy = True

    def wait(self) -> None:
        self.stream.synchronize()
        self.busy = False

    def collect(self, query: int) -> dict:
        self.ev[3].synchronize()
        end = time.perf_counter_ns()
        self.stream.synchronize()          # surfaces errors raised on the stream
        self.busy = False
        e = self.ev
        h2d, comp, d2h = (self.dev.elapsed_ms(e[i], e[i + 1]) for i in range(3))
        return {"run_id": "", "query": query, "stream": self.index, "batch_size": self.batch,
                "enqueue_start_ns": self.t0, "enqueue_end_ns": self.t1, "end_ns": end,
                "enqueue_ms": (self.t1 - self.t0) / 1e6, "h2d_ms": h2d, "compute_ms": comp, "d2h_ms": d2h,
                "latency_ms": h2d + comp + d2h, "host_latency_ms": (end - self.t0) / 1e6}


def _pinned_copy(dev: Any, a: Any) -> Any:
    a = np.ascontiguousarray(a)
    p = dev.pinned_empty(a.shape, a.dtype)
    p[...] = a
    return p


def _summary(q: pd.DataFrame, batch: int, wall_ms: float, percentiles: Sequence[float], threads: int = 0,
             host: dict | None = None) -> pd.DataFrame:
    st = latency_stats(q["latency_ms"], percentiles)
    rows = [("queries", len(q), "", "timed inferences"),
            ("throughput_per_s", len(q) * batch / (wall_ms / 1e3), "1/s", "samples per second over the wall time"),
            ("throughput_qps", len(q) / (wall_ms / 1e3), "1/s", "inferences per second"),
            ("latency_min_ms", st["min"], "ms", "device-timed latency (H2D + compute + D2H): fastest"),
            ("latency_max_ms", st["max"], "ms", "slowest"), ("latency_mean_ms", st["mean"], "ms", "mean"),
            ("latency_median_ms", st["median"], "ms", "median"),
            ("latency_median_ci_low_ms", st["median_ci_low"], "ms", "95% confidence interval of the median: low"),
            ("latency_median_ci_high_ms", st["median_ci_high"], "ms", "95% confidence interval of the median: high")]
    rows += [(f"latency_p{p:g}_ms", st[f"p{p:g}"], "ms", f"{p:g}th percentile") for p in percentiles]
    cov = 100.0 * st["std"] / st["mean"] if st["mean"] > 0 else 0.0
    rows += [("latency_std_ms", st["std"], "ms", "standard deviation of the latency"),
             ("latency_cov_pct", cov, "%", "coefficient of variation of the latency"),
             ("host_latency_median_ms", q["host_latency_ms"].median(), "ms", "host wall clock per inference"),
             ("enqueue_median_ms", q["enqueue_ms"].median(), "ms", "host time to submit one inference"),
             ("h2d_median_ms", q["h2d_ms"].median(), "ms", "input copy"),
             ("compute_median_ms", q["compute_ms"].median(), "ms", "network execution"),
             ("d2h_median_ms", q["d2h_ms"].median(), "ms", "output copy"),
             ("copy_share_pct", _copy_share(q), "%", "H2D + D2H share of a query's device-timed latency, the median over "
                                                     "queries (copies from page-locked host memory; 0 without transfers)"),
             ("total_host_wall_ms", wall_ms, "ms", "wall time of the timed phase"),
             ("total_compute_ms", q["compute_ms"].sum(), "ms", "sum of network execution times"),
             ("compute_share_pct", 100.0 * q["compute_ms"].sum() / wall_ms, "%",
              "total compute / total wall time (above 100% with overlapping streams)"),
             ("threads", threads, "", "BLAS threads per stream on the CPU device (0 on a GPU)")]
    return summary_frame(rows, host)


def summary_frame(rows: list, host: dict | None) -> pd.DataFrame:
    """A summary frame (metric, value, unit, meaning) of ``rows`` (metric, value, unit, meaning) followed by the
    host's load, cores and other processes' busy cores while timing (NaN where ``host`` does not say)."""
    host = host or {}
    rows = rows + [
        ("host_load_1m", host.get("host_load_1m", float("nan")), "", "host 1-minute load average before timing"),
        ("host_cpus", host.get("host_cpus", float("nan")), "", "CPU cores this process may use"),
        ("host_other_busy_cores", host.get("host_other_busy_cores", float("nan")), "",
         "cores other processes kept busy while timing (/proc/stat less this process; NaN where unknown)")]
    return with_shown(pd.DataFrame([{"metric": m, "value": float(v), "unit": u, "meaning": d} for m, v, u, d in rows]))


def summary_value(summary: pd.DataFrame, metric: str, what: str) -> float:
    """The value of ``metric`` in a (metric, value, ...) summary frame; a name not in it is an ArgumentError."""
    s = summary.set_index("metric")["value"]
    return float(s[one_of(metric, s.index, f"{what}: metric")])


def _copy_share(q: pd.DataFrame) -> float:
    """The median over queries of 100 x (H2D + D2H) / latency (NaN when no latency was timed). A median, not a
    ratio of sums: a few queries whose copy stage waited (on the CPU device, a stream thread waiting for the GIL
    while another stream computes) must not make a run look transfer-bound."""
    timed = q[q["latency_ms"] > 0]
    if not len(timed):
        return float("nan")
    return float((100.0 * (timed["h2d_ms"] + timed["d2h_ms"]) / timed["latency_ms"]).median())


def _known(x: Any) -> Any:
    """``x``, or None where it is missing or NaN (the checks skip what was not measured)."""
    return None if x is None or x != x else x


def _diagnose(q: pd.DataFrame, summary: pd.DataFrame, gpu: pd.DataFrame, transfers: bool, kind: str,
              threads: int = 0) -> pd.DataFrame:
    s = summary.set_index("metric")["value"]
    out = []
    enq, comp = s["enqueue_median_ms"], s["compute_median_ms"]
    if kind != "cpu" and comp > 0 and enq >= 0.8 * comp:
        out.append(("enqueue_bound", "warning", enq / comp, 0.8,
                    f"submitting an inference takes {enq:.3f} ms on the host, {100 * enq / comp:.0f}% of the "
                    f"{comp:.3f} ms the device needs to run it: the host cannot keep the device busy. Larger batches, "
                    "fewer layers (fusion) or CUDA graphs reduce the host work per sample."))
    if transfers and comp > 0:
        for name, col in (("h2d_bound", "h2d_median_ms"), ("d2h_bound", "d2h_median_ms")):
            if s[col] > comp:
                what = "input" if name == "h2d_bound" else "output"
                out.append((name, "warning", s[col] / comp, 1.0,
                            f"copying the {what} ({s[col]:.3f} ms) takes longer than computing ({comp:.3f} ms): keep "
                            "data on the device, use page-locked host memory, or overlap copies with compute on "
                            "several streams."))
    reasons = "|".join(gpu["throttle_reasons"]) if len(gpu) else ""
    for f in disturbances({"latency_cv_pct": spread_pct(q["latency_ms"]), "gpu_throttle": reasons,
                           "host_load_1m": s.get("host_load_1m"), "host_cpus": s.get("host_cpus"), "threads": threads,
                           "host_other_busy_cores": _known(s.get("host_other_busy_cores")), "device": kind},
                          max_cv_pct=UNSTABLE_CV_PCT).itertuples():
        out.append((f.finding, f.severity, f.value, f.threshold, f.explanation))
    if len(gpu):
        if "sw_power_cap" in reasons.split("|") or (gpu["power_w"] >= 0.98 * gpu["power_limit_w"]).any():
            out.append(("power_capped", "info", float(gpu["power_w"].max()), float(gpu["power_limit_w"].max()),
                        f"the GPU reached its power limit ({gpu['power_limit_w'].max():.0f} W): clocks drop to stay "
                        "under it, so throughput depends on power, not only on the network."))
    return DIAGNOSES.frame([{"finding": f, "severity": sv, "value": float(v), "threshold": float(t), "explanation": e}
                            for f, sv, v, t, e in out])
