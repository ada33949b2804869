"""``perfkit.profile(context, ...)``: a profiling run whose results are frames.

    with pk.profile(ctx, layers=True, memory=True, gpu_metrics=True) as run:
        ctx.execute(batch)
    run.layers; run.memory; run.queries; run.gpu; run.kernels; run.summary(); run.overview()

The run measures its own cost: it calibrates the cost of one layer boundary, and after the last
profiled inference it times the same inference unprofiled, so ``overview()`` shows profiled and
unprofiled end-to-end latency, the overhead, and how the sum of the layer times compares with the
end-to-end latency (and why they differ).
"""
from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .._version import __version__
from ..device import cpu_snapshot, host_load, other_busy_cores
from ..errors import PerfkitError
from ..frames.schemas import KERNELS, LAYER_TIMES, MEMORY_EVENTS, QUERIES
from ..frames.stats import spread_pct
from .data import RunData
from .nvml import NvmlSampler
from .profiler import LayerTimer, calibrate_event_cost


class _CallObserver:
    """Every call the context accepted during the run, in submission order (``execute`` and
    ``enqueue`` alike), with the context's query id that its layer times carry."""

    def __init__(self) -> None:
        self.calls: list = []
        self.last_inputs = None

    def on_call(self, call: Any, inputs: Any) -> None:
        self.calls.append((call.query, call.kind, call.batch, id(call.stream), call.t0_ns, call.t1_ns))
        if call.kind == "execute":
            self.last_inputs = (inputs, call.batch)


def _check_run_arguments(context: Any, memory: Any, interval_ms: Any) -> None:
    from ..arguments import number
    from ..errors import ArgumentError
    from ..runtime import ExecutionContext
    if not isinstance(context, ExecutionContext):
        raise ArgumentError(f"profile needs an ExecutionContext (engine.create_execution_context()), "
                            f"not {type(context).__name__}")
    if memory not in (True, False, "all", None, 0, 1):
        raise ArgumentError(f"profile: memory must be True, False or 'all', not {memory!r}")
    number(interval_ms, "profile: interval_ms", 0, exclusive_minimum=True)


class Run(RunData):
    """A live profiling run on one execution context (see :func:`profile`)."""

    def __init__(self, context: Any, layers: bool = True, memory: bool = True, gpu_metrics: bool = True,
                 kernels: bool = False, nvtx: bool = False, baseline: bool = True, interval_ms: float = 10.0):
        _check_run_arguments(context, memory, interval_ms)
        self.context = context
        self.options = dict(layers=layers, memory=memory, gpu_metrics=gpu_metrics, kernels=kernels, nvtx=nvtx,
                            baseline=baseline)
        engine = context.engine
        dev = context.device
        run_id = uuid.uuid4().hex[:8]
        meta = {"run_id": run_id, "perfkit_version": __version__, **{k: str(v) for k, v in dev.info().items()},
                "engine": engine.name, "engine_id": engine.id, "precision": engine.precision,
                "max_batch_size": engine.max_batch_size, "context": context.name,
                "predicted_device_memory_bytes": engine.device_memory_bytes}
        super().__init__({}, meta, [])
        self._timer = LayerTimer(run_id) if layers else None
        self._observer = _CallObserver()
        self._tracker = engine.allocator if hasattr(engine.allocator, "events_since") else None
        self._sampler = NvmlSampler(dev.nvml_index, interval_ms) if gpu_metrics and dev.kind == "cuda" else None
        self._hooks: list = []
        self._cupy_hook = None
        self._tracer = None
        self._prev = None

    # lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> "Run":
        ctx, dev = self.context, self.context.device
        self.meta["event_cost_ns"] = calibrate_event_cost(dev)
        self.meta.update(host_load())       # before the run: the load of other work, not of its own inferences
        self.meta["started_ns"] = time.perf_counter_ns()
        self._cpu_before = cpu_snapshot()
        if self.options["memory"]:
            if self._tracker is None:
                self.messages.append("memory: this engine's allocator is not a TrackingAllocator, so its events were "
                                     "not recorded; build with the default allocator or Builder(allocator="
                                     "perfkit.TrackingAllocator()).")
            else:
                self._mark = self._tracker.mark()
                self._live_at_start = self._tracker.live()
                if dev.kind == "cuda" and self.options["memory"] == "all":
                    from ..device.tracking import CupyAllocationHook
                    self._cupy_hook = CupyAllocationHook(self._tracker).__enter__()
        if self.options["gpu_metrics"]:
            if self._sampler is None:
                self.messages.append(f"gpu metrics: the run is on {dev.spec}; there is no GPU to sample.")
            else:
                self._sampler.start()
                if self._sampler.message:
                    self.messages.append(self._sampler.message)
        if self.options["nvtx"]:
            try:
                from .nvtx_hook import NvtxHook
                self._hooks.append(NvtxHook())
            except ImportError:
                self.messages.append("nvtx: the nvtx package is not installed (pip install nvtx); no ranges emitted.")
        if self.options["kernels"]:
            self._start_kernels()
        self._prev = (ctx.profiler, list(ctx.step_hooks))
        ctx.profiler = self._timer if self._timer is not None else self._prev[0]
        ctx.step_hooks = self._prev[1] + self._hooks
        ctx.observers.append(self._observer)
        return self

    def stop(self, baseline: bool = True) -> None:
        """Waits for the context's work, stops every recorder and builds the frames; then, if asked
        and nothing failed, times the unprofiled baseline. A profiler error raised during the run is
        raised here (as :class:`~perfkit.errors.ProfilerError`) once the context is restored."""
        ctx = self.context
        failure = None
        try:
            ctx.wait_profiles()
        except PerfkitError as exc:
            failure = exc
        finally:
            ctx.profiler, ctx.step_hooks = self._prev
            ctx.observers.remove(self._observer)
        self.meta["stopped_ns"] = time.perf_counter_ns()
        self.meta["threads"] = ctx.device.threads if ctx.device.kind == "cpu" else 0
        if ctx.device.kind == "cpu":        # the cores other processes kept busy during the run (NaN: unknown)
            self.meta["host_other_busy_cores"] = other_busy_cores(self._cpu_before, cpu_snapshot())
        if self._tracer is not None:
            self._tracer.stop()
        if self._cupy_hook is not None:
            self._cupy_hook.__exit__(None, None, None)
        if self._sampler is not None:
            self._sampler.stop()
        self._collect()
        if failure is not None:
            self.messages.append(f"overhead: no unprofiled baseline was timed: {failure}")
            raise failure
        if self.options["baseline"] and baseline:
            self._measure_baseline()
        elif self.options["baseline"]:
            self.messages.append("overhead: no unprofiled baseline was timed: the profiled block raised.")

    # results -----------------------------------------------------------------------------------------
    def _collect(self) -> None:
        f = self.frames
        f["layers"] = self._layers()
        if self._tracker is not None and self.options["memory"]:
            f["memory"] = self._tracker.events_since(self._mark)
            self._memory_meta()
        else:
            f["memory"] = MEMORY_EVENTS.frame([])
        f["gpu"] = self._sampler.frame if self._sampler is not None else NvmlSampler().frame
        f["kernels"] = self._tracer.frame(f["layers"]) if self._tracer is not None else KERNELS.frame([])
        f["queries"] = self._queries()
        engine = self.context.engine        # what ran: FLOPs, bytes and fused members per layer, tactics chosen
        f["engine_layers"], f["build_log"] = engine.layers, engine.build_log
        for name, frame in f.items():       # what plots name in their titles: the run, engine and device
            frame.attrs.update({k: self.meta[k] for k in ("run_id", "engine", "device_name") if self.meta.get(k)})

    def _memory_meta(self) -> None:
        live = self._live_at_start
        engine, ctx = self.context.engine, self.context
        owners = {engine.owner, ctx.owner}
        held = int(live[live["owner"].isin(owners)]["bytes"].sum()) if len(live) else 0
        ev = self.frames["memory"]
        mine = ev[ev["owner"].isin(owners)]
        delta = (mine["size_bytes"] * mine["action"].map({"alloc": 1, "free": -1, "oom": 0})).cumsum()
        self.meta["measured_device_memory_bytes"] = held + int(max(0, delta.max() if len(delta) else 0))
        user = ev[ev["tag"] == "user"]
        self.meta["user_alloc_events"] = int((user["action"] == "alloc").sum())

    def _layers(self) -> pd.DataFrame:
        """The timer's layer rows, with ``iteration`` set to the run's query number of the call each
        inference belongs to (calls are numbered from 0 in submission order, execute and enqueue alike)."""
        if self._timer is None:
            return LAYER_TIMES.frame([])
        layers = self._timer.frame
        number = {c[0]: q for q, c in enumerate(self._observer.calls)}
        ctx_id = id(self.context)
        iteration = {it: number.get(query, -1) for it, cid, query in self._timer.queries() if cid == ctx_id}
        if len(layers):
            layers["iteration"] = layers["iteration"].map(lambda it: iteration.get(it, -1)).astype("int64")
            layers = layers[layers["iteration"] >= 0].reset_index(drop=True)
        return layers

    def _queries(self) -> pd.DataFrame:
        """One row per call of the run; compute time is the span of the call's own layers (by query
        number), and an enqueued call ends when its last layer did."""
        layers = self.frames["layers"]
        spans = layers.groupby("iteration").agg(s=("start_ns", "min"), e=("end_ns", "max")) if len(layers) else None
        rows, streams = [], {}
        for q, (_, kind, batch, stream, t0, t1) in enumerate(self._observer.calls):
            has = spans is not None and q in spans.index
            compute = (spans.loc[q, "e"] - spans.loc[q, "s"]) / 1e6 if has else np.nan
            end = t1 if kind == "execute" or not has else int(spans.loc[q, "e"])
            seen = kind == "execute" or has         # without layer times an enqueued call's end is unknown
            rows.append({"run_id": self.meta["run_id"], "query": q, "stream": streams.setdefault(stream, len(streams)),
                         "batch_size": batch, "enqueue_start_ns": t0, "enqueue_end_ns": t1, "end_ns": end,
                         "enqueue_ms": (t1 - t0) / 1e6, "h2d_ms": 0.0, "compute_ms": float(compute), "d2h_ms": 0.0,
                         "latency_ms": float(compute), "host_latency_ms": (end - t0) / 1e6 if seen else np.nan})
        return QUERIES.frame(rows)

    def _measure_baseline(self) -> None:
        q = self.frames["queries"]
        if self._observer.last_inputs is None or not len(q):
            self.messages.append("overhead: no execute() call was profiled, so no unprofiled baseline was timed.")
            return
        inputs, batch = self._observer.last_inputs
        ctx, samples = self.context, []
        for _ in range(2):
            ctx.execute(inputs, batch)
        t_end = time.perf_counter() + 0.2
        while len(samples) < max(5, len(q)) or time.perf_counter() < t_end:
            t0 = time.perf_counter_ns()
            ctx.execute(inputs, batch)
            samples.append((time.perf_counter_ns() - t0) / 1e6)
            if len(samples) >= 10_000:
                break
        self.meta["e2e_unprofiled_ms"] = float(np.median(samples))
        self.meta["e2e_unprofiled_cv_pct"] = spread_pct(samples)
        executed = [i for i, c in enumerate(self._observer.calls) if c[1] == "execute"]
        self.meta["e2e_profiled_ms"] = float(np.median(q["host_latency_ms"].to_numpy()[executed]))

    def _start_kernels(self) -> None:
        dev = self.context.device
        if dev.kind != "cuda":
            self.messages.append("kernels: kernel tracing needs a CUDA device.")
            return
        try:
            from .cupti_tracer import KernelTracer
            self._tracer = KernelTracer().start()
            self._hooks.append(self._tracer.hook())
        except Exception as exc:
            self._tracer = None
            self.messages.append(f"kernels: CUPTI tracing unavailable ({type(exc).__name__}: {exc}); "
                                 "install cupti-python matching your CUDA driver.")


@contextlib.contextmanager
def profile(context: Any, layers: bool = True, memory: bool = True, gpu_metrics: bool = True, kernels: bool = False,
            nvtx: bool = False, baseline: bool = True, interval_ms: float = 10.0) -> Iterator[Run]:
    """Profiles every inference run on ``context`` inside the ``with`` block; see :class:`Run`.

    ``execute`` and ``enqueue`` calls alike become rows of ``run.queries``, numbered in submission
    order; ``run.layers["iteration"]`` is the query number of the call each layer time belongs to.
    A profiler error during the block is raised at its exit as :class:`~perfkit.errors.ProfilerError`.
    When the block raises, its exception propagates unchanged and no unprofiled baseline is timed.

    ``memory=True`` records the engine's and contexts' allocations (their TrackingAllocator);
    ``memory="all"`` on CUDA also routes every CuPy allocation in the process through it (tagged
    ``user``: library temporaries, user arrays), at a cost of a few microseconds per allocation.
    """
    run = Run(context, layers, memory, gpu_metrics, kernels, nvtx, baseline, interval_ms).start()
    try:
        yield run
    except BaseException as exc:
        try:
            run.stop(baseline=False)        # no baseline after a failure; the user's exception wins
        except Exception as stop_exc:
            exc.add_note(f"perfkit.profile could not finish the run: {type(stop_exc).__name__}: {stop_exc}")
        raise
    run.stop()
