"""The profiled step loop of an execution context: per-layer timestamps and step hooks.

On the CPU each layer is bracketed by ``perf_counter_ns`` on the thread that runs it (the caller
for ``execute``, a stream worker for ``enqueue``): the time the stream reached the layer. On
CUDA a pooled event is recorded between layers; the times are read once the stream has passed
them — at once for ``execute``, from a resolver thread for ``enqueue`` — and placed on the
``perf_counter_ns`` timeline through a reference event taken when profiling started.
Step hooks (NVTX ranges, CUPTI correlation) get ``enter(index, step)`` / ``exit(index, step)``.
A context in CUDA-graph mode (``runtime/cuda_graph.py``) replays a captured graph instead; its
profiled graphs carry globaltimer stamps between layers, read by ``report_graph_times``.
Times are reported under the call's query id (``launch.Call``) to the profiler the call was
submitted with; whatever a profiler raises is kept by the context's :class:`Profiling` and raised
as :class:`~perfkit.errors.ProfilerError` by the context's next call.
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
        self.thread = threading.Thread(target=self._run, name="perfkit-profile-resolver", daemon=True)
        self.thread.start()

    def submit(self, fn) -> None:
        with self.cv:
            self.pending += 1
        self.q.put(fn)

    def close(self) -> None:
        """Ends the thread once everything handed to it has run (the context is closing)."""
        self.q.put(None)

    def _run(self) -> None:
        while True:
            fn = self.q.get()
            if fn is None:
                return
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


class Profiling:
    """The profiling plumbing of one context: pooled CUDA events, the clock, the resolver thread, the
    report ``execute`` makes once it has synchronised, and the first error a profiler raised."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self._events: list = []
        self._lock = threading.Lock()
        self._clock: CudaClock | None = None
        self._resolver: _Resolver | None = None
        self._deferred: Any = None
        self._error: BaseException | None = None

    def take_events(self, n: int) -> list:
        with self._lock:
            if self._events and len(self._events[-1]) >= n:
                return self._events.pop()
        return [self.device.create_event() for _ in range(n)]

    def return_events(self, events: list) -> None:
        with self._lock:
            self._events.append(events)

    def clock(self, stream: Any) -> CudaClock:
        if self._clock is None:
            self._clock = CudaClock(self.device, stream)
        return self._clock

    def later(self, fn: Any) -> None:
        """Runs ``fn`` on the resolver thread (``enqueue``: once the stream has got there)."""
        if self._resolver is None:
            self._resolver = _Resolver(self.fail)
        self._resolver.submit(fn)

    def defer(self, fn: Any) -> None:
        """``execute`` runs ``fn`` right after it has synchronised (``run_deferred``)."""
        self._deferred = fn

    def run_deferred(self) -> None:
        fn, self._deferred = self._deferred, None
        if fn is not None:
            fn()

    def drain(self) -> None:
        """Waits until the resolver thread has reported everything handed to it."""
        if self._resolver is not None:
            self._resolver.drain()

    def close(self) -> None:
        """Stops the resolver thread (after what it holds); a later ``later`` starts a new one."""
        resolver, self._resolver = self._resolver, None
        if resolver is not None:
            resolver.close()

    def fail(self, error: BaseException) -> None:
        """Keeps the first error; ``raise_error`` raises it (once)."""
        with self._lock:
            if self._error is None:
                self._error = error

    @property
    def has_error(self) -> bool:
        """Whether an error waits to be raised (read without the lock: a hint for the fast path)."""
        return self._error is not None

    def raise_error(self) -> None:
        with self._lock:
            err, self._error = self._error, None
        if err is not None:
            raise err


def _hook_error(exc: BaseException, hooks: list) -> ProfilerError:
    """A step's own failure is already a PerfkitError naming the layer; anything else came from a step
    hook (``enter``/``exit``), which is named."""
    names = ", ".join(type(h).__name__ for h in hooks) or "none"
    return ProfilerError(f"a step hook raised {type(exc).__name__}: {exc} (hooks: {names}); fix the hook or "
                         "remove it from context.step_hooks")


def launch_profiled(loop: Any, state: Profiling, call: Any, tensors: dict, stream: Any, consumed: Any,
                    sync: bool) -> None:
    """Runs (CPU) or launches (CUDA) every step of ``loop`` with timing, and reports the times to the
    profiler the call was submitted with (``call.profiler``), under the call's query id."""
    hooks, steps, batch = call.hooks, loop.steps, call.batch
    if state.device.kind == "cpu":
        marks = []
        if loop.last_input_reader < 0 and consumed is not None:
            consumed()
        try:
            for i, s in enumerate(steps):
                for h in hooks:
                    h.enter(i, s)
                t0 = time.perf_counter_ns()
                loop.run_step(i, batch, tensors, consumed)
                t1 = time.perf_counter_ns()
                for h in hooks:
                    h.exit(i, s)
                marks.append((i, s.name, s.type, s.precision, t0, t1))
        except PerfkitError:
            raise
        except Exception as exc:
            raise _hook_error(exc, hooks) from exc
        finally:
            set_current_layer("")
        name = getattr(stream, "name", "") or ("execute" if sync else "stream")
        _report(state, call, name, "host", marks)
        return
    events = state.take_events(len(steps) + 1)
    # raw pointers and the runtime call itself: the boundary costs one cudaEventRecord, nothing more
    from cupy.cuda import runtime
    record, sp = runtime.eventRecord, stream.raw.ptr
    ptrs = [e.raw.ptr for e in events]
    if loop.last_input_reader < 0 and consumed is not None:
        consumed()
    record(ptrs[0], sp)
    try:
        for i, s in enumerate(steps):
            for h in hooks:
                h.enter(i, s)
            loop.run_step(i, batch, tensors, consumed)
            record(ptrs[i + 1], sp)
            for h in hooks:
                h.exit(i, s)
    except Exception as exc:
        state.return_events(events)
        if isinstance(exc, PerfkitError):
            raise
        raise _hook_error(exc, hooks) from exc
    finally:
        set_current_layer("")
    clock = state.clock(stream)
    sname, desc = hex(stream.id), loop.desc

    def resolve() -> None:
        runtime.eventSynchronize(ptrs[-1])
        ts = clock.to_ns_all(ptrs)
        marks = [(i, d[0], d[1], d[2], ts[i], ts[i + 1]) for i, d in enumerate(desc)]
        state.return_events(events)
        _report(state, call, sname, "cuda_event", marks)
    if sync:
        state.defer(resolve)                    # execute() reports right after it has synchronised
    else:
        state.later(resolve)                    # enqueue(): reported once the stream gets there


def report_graph_times(state: Profiling, desc: list, call: Any, graph: Any, stream: Any, sync: bool) -> None:
    """Per-layer times of one replay of a profiled CUDA graph, from the globaltimer stamps its marker
    kernels wrote between layers (``desc``: (name, type, precision) per step). ``execute`` reads them
    right after it has synchronised; for ``enqueue`` an event after the replay tells the resolver
    thread when they are there."""
    off = state.clock(stream).globaltimer_offset()
    stamps, sname = graph.stamps, hex(stream.id)

    def resolve() -> None:
        try:
            ts = stamps.astype(np.int64) + off          # a copy: the slot may be replayed at once
        finally:
            graph.free.set()
        _report(state, call, sname, "cuda_graph", Marks(desc, ts))
    if sync:
        state.defer(resolve)
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
    state.later(wait_and_resolve)


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


def _report(state: Profiling, call: Any, stream: str, clock: str, marks: Any) -> None:
    """Hands one inference's layer times to its profiler (``record_inference`` when it has one, else
    ``report_layer_time`` per layer). Whatever the profiler raises becomes a :class:`ProfilerError`
    that the context raises on its next call: it never stops the inference or a worker thread."""
    prof = call.profiler
    if prof is None:                    # only step hooks (e.g. NVTX ranges) were wanted
        return
    rich = hasattr(prof, "record_inference")
    try:
        if rich:    # LayerTimer's unchecked entry point when there is one (see perfkit.profiling.profiler)
            record = getattr(prof, "_record_inference", None) or prof.record_inference
            record(call.context, call.batch, stream, clock, marks, query=call.query)
        else:
            for _, name, _, _, t0, t1 in marks:
                prof.report_layer_time(name, (t1 - t0) / 1e6)
    except Exception as exc:
        method = "record_inference" if rich else "report_layer_time"
        err = ProfilerError(f"profiler {type(prof).__name__} raised {type(exc).__name__} in {method} for query "
                            f"{call.query} of context {call.context.name!r}: {exc}; fix the profiler or set "
                            "context.profiler = None")
        err.__cause__ = exc
        state.fail(err)
