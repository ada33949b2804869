"""The profiled step loop of an execution context: per-layer timestamps and step hooks.

On the CPU each layer is bracketed by ``perf_counter_ns`` on the thread that runs it (the caller
for ``execute``, the stream's worker for ``enqueue``): the time the stream reached the layer. On
CUDA a pooled event is recorded between layers; the times are read once the stream has passed
them — at once for ``execute``, from a resolver thread for ``enqueue`` — and placed on the
``perf_counter_ns`` timeline through a reference event taken when profiling started.
Step hooks (NVTX ranges, CUPTI correlation) get ``enter(index, step)`` / ``exit(index, step)``.
A context in CUDA-graph mode (``runtime/cuda_graph.py``) replays a captured graph instead; its
profiled graphs carry the same boundary events, read by ``report_graph_times``.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any

import numpy as np

from ..device.memory import set_current_layer
from ..errors import ExecutionError, PerfkitError, ProfilerError


class CudaClock:
    """Maps CUDA events onto perf_counter_ns: t = host_ref + elapsed(ref_event, event)."""

    def __init__(self, device: Any, stream: Any):
        self.device = device
        ev = device.create_event()
        ev.record(stream)
        stream.synchronize()
        self.host_ref_ns = time.perf_counter_ns()
        self.ref = ev
        import cupy
        self._elapsed = cupy.cuda.runtime.eventElapsedTime
        self._ref_ptr = ev.raw.ptr
        self._gt_offset: int | None = None

    def to_ns(self, event: Any) -> int:
        """Call only once ``event`` has completed."""
        return self.host_ref_ns + int(self._elapsed(self._ref_ptr, event.raw.ptr) * 1e6)

    def globaltimer_offset(self) -> int:
        """perf_counter_ns - GPU globaltimer (the clock of profiled CUDA graphs), measured once."""
        if self._gt_offset is None:
            from .stamps import globaltimer_offset
            self._gt_offset = globaltimer_offset(self.device)
        return self._gt_offset

    def to_ns_all(self, ptrs: list) -> list:
        el, ref, base = self._elapsed, self._ref_ptr, self.host_ref_ns
        return [base + int(el(ref, p) * 1e6) for p in ptrs]


class _Resolver:
    """One daemon thread per context that waits for enqueued profiled work and reports it. An
    exception is never dropped: it goes to ``on_error`` (the context raises it on its next call)."""

    def __init__(self, on_error: Any) -> None:
        self.q: queue.Queue = queue.Queue()
        self.pending = 0
        self.cv = threading.Condition()
        self.on_error = on_error
        threading.Thread(target=self._run, name="perfkit-profile-resolver", daemon=True).start()

    def submit(self, fn) -> None:
        with self.cv:
            self.pending += 1
        self.q.put(fn)

    def _run(self) -> None:
        while True:
            fn = self.q.get()
            try:
                fn()
            except Exception as exc:
                self.on_error(exc if isinstance(exc, PerfkitError) else ExecutionError(
                    f"reading the layer times of an enqueued inference failed ({type(exc).__name__}: {exc}); "
                    "the inference itself reports its failure at stream.synchronize()"))
            finally:
                with self.cv:
                    self.pending -= 1
                    self.cv.notify_all()

    def drain(self) -> None:
        with self.cv:
            while self.pending:
                self.cv.wait()


def launch_profiled(ctx: Any, call: Any, batch: int, tensors: dict, stream: Any, input_consumed: Any,
                    sync: bool) -> None:
    """Runs (CPU) or launches (CUDA) every step with timing; reports to the profiler the call was
    submitted with (``call.profiler``), under the call's query id."""
    hooks = call.hooks
    steps = ctx._steps
    cuda = ctx.device.kind != "cpu"
    if not cuda:
        marks = []
        for i, (s, op, weights, bf16) in enumerate(steps):
            for h in hooks:
                h.enter(i, s)
            t0 = time.perf_counter_ns()
            ctx._run_step(i, s, op, weights, bf16, batch, tensors, stream, input_consumed)
            t1 = time.perf_counter_ns()
            for h in hooks:
                h.exit(i, s)
            marks.append((i, s.name, s.type, s.precision, t0, t1))
        set_current_layer("")
        name = getattr(stream, "name", "") or ("execute" if sync else "stream")
        _report(ctx, call, name, "host", marks)
        return
    events = ctx._take_events(len(steps) + 1)
    # raw pointers and the runtime call itself: the boundary costs one cudaEventRecord, nothing more
    from cupy.cuda import runtime
    record, sp = runtime.eventRecord, stream.raw.ptr
    ptrs = [e.raw.ptr for e in events]
    record(ptrs[0], sp)
    for i, (s, op, weights, bf16) in enumerate(steps):
        for h in hooks:
            h.enter(i, s)
        ctx._run_step(i, s, op, weights, bf16, batch, tensors, stream, input_consumed)
        record(ptrs[i + 1], sp)
        for h in hooks:
            h.exit(i, s)
    set_current_layer("")
    clock = ctx._cuda_clock(stream)
    sname = hex(stream.id)

    def resolve() -> None:
        runtime.eventSynchronize(ptrs[-1])
        ts = clock.to_ns_all(ptrs)
        marks = [(i, d[0], d[1], d[2], ts[i], ts[i + 1]) for i, d in enumerate(ctx._step_desc)]
        ctx._return_events(events)
        _report(ctx, call, sname, "cuda_event", marks)
    if sync:
        ctx._deferred_report = resolve          # execute() reports right after it has synchronised
    else:
        ctx._resolver().submit(resolve)         # enqueue(): reported once the stream gets there


def report_graph_times(ctx: Any, call: Any, graph: Any, batch: int, stream: Any, sync: bool) -> None:
    """Per-layer times of one replay of a profiled CUDA graph, from the globaltimer stamps its marker
    kernels wrote between layers. ``execute`` reads them right after it has synchronised; for
    ``enqueue`` an event after the replay tells the resolver thread when they are there."""
    off = ctx._cuda_clock(stream).globaltimer_offset()
    stamps, desc, sname = graph.stamps, ctx._step_desc, hex(stream.id)

    def resolve() -> None:
        try:
            ts = stamps.astype(np.int64) + off          # a copy: the slot may be replayed at once
        finally:
            graph.free.set()
        _report(ctx, call, sname, "cuda_graph", Marks(desc, ts))
    if sync:
        ctx._deferred_report = resolve
        return
    from cupy.cuda import runtime
    graph.done.record(stream)
    done = graph.done.raw.ptr

    def wait_and_resolve() -> None:
        try:
            runtime.eventSynchronize(done)
        except Exception:
            graph.free.set()                            # a failed inference has no times to report
            raise
        resolve()
    ctx._resolver().submit(wait_and_resolve)


class Marks:
    """(index, name, type, precision, start_ns, end_ns) per layer, built only when iterated: a
    profiled replay hands its raw boundary times over without a Python loop on the inference's path."""

    __slots__ = ("desc", "ts")

    def __init__(self, desc: list, ts: Any) -> None:
        self.desc, self.ts = desc, ts

    def __len__(self) -> int:
        return len(self.desc)

    def __iter__(self):
        ts = self.ts.tolist()
        return iter([(i, d[0], d[1], d[2], ts[i], ts[i + 1]) for i, d in enumerate(self.desc)])


def _report(ctx: Any, call: Any, stream: str, clock: str, marks: Any) -> None:
    """Hands one inference's layer times to its profiler (``record_inference`` when it has one, else
    ``report_layer_time`` per layer). Whatever the profiler raises becomes a :class:`ProfilerError`
    that the context raises on its next call: it never stops the inference or a worker thread."""
    prof = call.profiler
    if prof is None:                    # only step hooks (e.g. NVTX ranges) were wanted
        return
    rich = hasattr(prof, "record_inference")
    try:
        if rich:
            prof.record_inference(ctx, call.batch, stream, clock, marks, query=call.query)
        else:
            for _, name, _, _, t0, t1 in marks:
                prof.report_layer_time(name, (t1 - t0) / 1e6)
    except Exception as exc:
        method = "record_inference" if rich else "report_layer_time"
        err = ProfilerError(f"profiler {type(prof).__name__} raised {type(exc).__name__} in {method} for query "
                            f"{call.query} of context {ctx.name!r}: {exc}; fix the profiler or set "
                            "context.profiler = None")
        err.__cause__ = exc
        ctx.report_profile_error(err)
