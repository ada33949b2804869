"""ExecutionContext: runs an engine, synchronously (``execute``) or on a stream (``enqueue``)."""
from __future__ import annotations

import contextlib
import threading
import time
import weakref
from typing import Any, Iterator, Mapping

import numpy as np

from ..precision import round_bf16
from ..device.memory import align, allocate, set_current_layer
from ..errors import BatchSizeError, BindingError, ContextBusyError, ExecutionError, PerfkitError
from ..ops import Env, get_op


class Call:
    """One query of a context: its id (counted per context from 0), kind ("execute" or "enqueue"),
    batch, stream, host times of submission, and the profiler and step hooks it was submitted with.
    The id travels through the (profiled) step loop, so every layer time names the query it belongs to."""

    __slots__ = ("query", "kind", "batch", "stream", "t0_ns", "t1_ns", "profiler", "hooks")

    def __init__(self, query: int, kind: str, profiler: Any, hooks: list) -> None:
        self.query, self.kind, self.profiler, self.hooks = query, kind, profiler, hooks
        self.batch, self.stream, self.t0_ns, self.t1_ns = 0, None, time.perf_counter_ns(), 0

    @property
    def profiled(self) -> bool:
        return self.profiler is not None or bool(self.hooks)


class ExecutionContext:
    """One set of activation, workspace and I/O buffers for an engine.

    Several contexts of one engine run concurrently (one per thread or stream). One context is used
    by one thread at a time (the guide: a context is not thread-safe), and perfkit checks it: a call
    raises :class:`ContextBusyError`, changing nothing, when another thread is inside a call of this
    context, or when work another thread queued with ``enqueue`` has not finished yet. The thread that
    queued the work may go on calling: an ``enqueue`` on any stream is ordered after the context's
    earlier work (its stream waits for it, as ``cudaStreamWaitEvent`` would), and ``execute`` waits
    for it. Once the context's work has finished, any thread may take it over.
    A call rejected for bad input changes nothing: the next valid call runs normally.
    """

    def __init__(self, engine: Any, name: str, cuda_graph: bool = True):
        plan = engine.plan
        self.engine = engine
        self.name = name
        self.device = engine.device
        self.owner = f"context:{name}"
        kind, alloc = self.device.kind, engine.allocator
        b = plan.max_batch_size
        mem = plan.memory
        bufs = []
        self._arena = allocate(alloc, mem["activation_bytes"], "activations", self.owner, kind) \
            if mem["activation_bytes"] else None
        self._workspace = allocate(alloc, mem["workspace_bytes"], "workspace", self.owner, kind) \
            if mem["workspace_bytes"] else None
        self._io = allocate(alloc, mem["io_bytes"], "io", self.owner, kind) if mem["io_bytes"] else None
        bufs = [x for x in (self._arena, self._workspace, self._io) if x is not None]

        t = plan.tensors
        self._act = {n: self._arena.view(p.offset, (b,) + tuple(p.shape), p.dtype)
                     for n, p in t.items() if p.kind == "activation"}
        self._const = {n: engine.weights[f"constant/{n}"] for n, p in t.items() if p.kind == "constant"}
        self._io_views, off = {}, 0
        for n in plan.inputs + plan.outputs:
            p = t[n]
            self._io_views[n] = self._io.view(off, (b,) + tuple(p.shape), p.dtype)
            off += align(b * int(np.prod(p.shape)) * np.dtype(p.dtype).itemsize)
        self._steps = [(s, get_op(s.type), {k: engine.weights[v] for k, v in s.weights.items()},
                        s.precision == "bf16") for s in plan.steps]
        self._step_desc = [(s.name, s.type, s.precision) for s in plan.steps]
        inputs = set(plan.inputs)
        readers = [i for i, s in enumerate(plan.steps) if inputs & set(s.inputs)]
        self._last_input_reader = max(readers) if readers else -1
        ws = None if self._workspace is None else self._workspace.array
        blas_bytes = int(plan.extra.get("blas_workspace_bytes", 0)) if kind == "cuda" and ws is not None else 0
        self._env = Env(self.device.xp, kind, ws[:ws.nbytes - blas_bytes] if blas_bytes else ws,
                        ws[ws.nbytes - blas_bytes:] if blas_bytes else None)
        self._fixed: dict = {}                  # batch -> activation views and constants
        self._graphs = None
        if kind == "cuda":
            from .cuda_graph import GraphRunner
            self._graphs = GraphRunner(self)
        self.cuda_graph = bool(cuda_graph)
        self._finalizer = weakref.finalize(self, _release, alloc, bufs, self._env, self._graphs)
        # page-locked host staging for execute() with host arrays on CUDA (guide ch. 5: pinned memory)
        self._pinned = {} if kind == "cpu" else {
            n: self.device.pinned_empty((b,) + tuple(t[n].shape), t[n].dtype) for n in plan.inputs + plan.outputs}
        self._busy_lock = threading.Lock()
        self._owner: int | None = None          # thread id of the last caller
        self._queries = 0                       # the next query id
        self._sync_stream = None
        self._default_stream = None
        self._done_event = None
        self._done_stream = None
        # profiling (see runtime/profiled.py): an IProfiler, step hooks, and call observers
        self.profiler: Any = None
        self.step_hooks: list = []
        self.observers: list = []
        self._event_pool: list = []
        self._pool_lock = threading.Lock()
        self._clock = None
        self._resolver_obj = None
        self._deferred_report = None
        self._profile_error: BaseException | None = None
        self._closed = False

    # public API ----------------------------------------------------------------------------------
    @property
    def device_memory_bytes(self) -> int:
        """Bytes this context took: activations, workspace and I/O buffers."""
        return sum(x.nbytes for x in (self._arena, self._workspace, self._io) if x is not None)

    def execute(self, inputs: Mapping[str, Any], batch_size: int | None = None) -> dict:
        """Runs one inference and waits for it. ``inputs``: name -> array with a leading batch
        dimension (host NumPy or, on CUDA, device CuPy arrays). Returns name -> array: NumPy when
        any input was a host array, else device arrays (fresh copies either way)."""
        with self._busy("execute") as call:
            batch, arrays, host = self._check(inputs, batch_size, for_enqueue=False)
            call.batch = batch
            self._wait_pending()
            stream = self._stream_for_execute()
            bound = {}
            for n, a in arrays.items():
                dst = bound[n] = self._io_views[n][:batch]
                if host[n] and self._pinned:
                    staged = self._pinned[n][:batch]
                    np.copyto(staged, a[:batch], casting="unsafe")
                    self.device.to_device(staged, stream=stream, out=dst)
                elif host[n]:
                    self.device.to_device(a[:batch], stream=stream, out=dst)
                elif a.dtype == dst.dtype and a.flags.c_contiguous:
                    bound[n] = a[:batch]        # a device array of the right layout is read where it is
                else:
                    dst[...] = a[:batch]
            call.stream = stream
            self._launch(call, batch, self._bindings(batch, bound, {}), stream, None, sync=True)
            stream.synchronize()
            if self._deferred_report is not None:
                report, self._deferred_report = self._deferred_report, None
                report()
            outs = {n: self._io_views[n][:batch] for n in self.engine.plan.outputs}
            call.t1_ns = time.perf_counter_ns()
            for ob in self.observers:
                ob.on_call(call, inputs)
            if any(host.values()) and self._pinned:
                result = {}
                for n, v in outs.items():
                    self.device.to_host(v, stream=stream, out=self._pinned[n][:batch])
                stream.synchronize()
                for n in outs:
                    result[n] = self._pinned[n][:batch].copy()
                return result
            if any(host.values()):
                return {n: self.device.to_host(v, stream=stream) for n, v in outs.items()}
            return {n: v.copy() for n, v in outs.items()}

    def enqueue(self, bindings: Mapping[str, Any], stream: Any = None, input_consumed: Any = None,
                batch_size: int | None = None) -> dict:
        """Queues one inference on ``stream`` and returns at once (guide 2.2).

        ``bindings``: name -> device array for every input, and optionally for outputs (otherwise the
        context's own output buffers are used; they are overwritten by the next call). Returns
        name -> output array, valid once the stream has reached this work. ``input_consumed``
        (an event of the device) fires as soon as the inputs may be refilled (guide 1.3).
        """
        with self._busy("enqueue") as call:
            if stream is None:
                stream = self._get_default_stream()
            self._check_stream(stream, input_consumed)
            batch, arrays, _ = self._check(bindings, batch_size, for_enqueue=True)
            call.batch, call.stream = batch, stream
            inputs = {n: a[:batch] for n, a in arrays.items() if n in self.engine.plan.inputs}
            outputs = {n: a[:batch] for n, a in arrays.items() if n in self.engine.plan.outputs}
            if self._done_event is None:
                self._done_event = self.device.create_event()
            elif self._done_stream is not stream and not self._done_event.query():
                # earlier work on another stream still uses our buffers: wait for it (bound to the
                # event's current record; the record below starts a new one)
                stream.wait_event(self._done_event)
            bindings = self._bindings(batch, inputs, outputs)
            if self.device.kind == "cpu":
                consumed = None if input_consumed is None else input_consumed.arm()

                def work() -> None:
                    try:
                        self._launch(call, batch, bindings, stream, consumed, sync=False)
                    finally:
                        if consumed is not None:
                            consumed()          # a failed inference no longer reads its inputs either
                stream.submit(work)
            else:
                self._launch(call, batch, bindings, stream, input_consumed, sync=False)
            self._done_event.record(stream)
            self._done_stream = stream
            call.t1_ns = time.perf_counter_ns()
            for ob in self.observers:
                ob.on_call(call, bindings)
            return {n: bindings[n] for n in self.engine.plan.outputs}

    @property
    def graph_status(self) -> str:
        """Whether this context replays CUDA graphs, and why not when it does not."""
        if self._graphs is None:
            return "off: CUDA graphs exist only on CUDA devices"
        if not self.cuda_graph:
            return "off: disabled (cuda_graph=False)"
        return self._graphs.status()

    @property
    def graph_memory_bytes(self) -> int:
        """Device bytes held by this context's captured graphs (temporaries kept for replay)."""
        return 0 if self._graphs is None else self._graphs.memory_bytes

    def wait_profiles(self) -> None:
        """Waits until every enqueued inference has finished and been reported to the profiler; raises
        :class:`ProfilerError` if a profiler or step hook raised since the last call."""
        self._wait_pending()
        if self._resolver_obj is not None:
            self._resolver_obj.drain()
        self._raise_profile_error()

    def close(self) -> None:
        """Waits for this context's work, closes the streams it created and returns its buffers to
        the allocator. A profiler error not yet reported is dropped. Closing twice does nothing."""
        if self._closed:
            return
        with self._busy("close"):
            self._wait_pending()
            if self._resolver_obj is not None:
                self._resolver_obj.drain()
            for s in (self._default_stream, self._sync_stream):
                if s is not None and hasattr(s, "close"):
                    s.close()
            self._default_stream = self._sync_stream = None
            self._finalizer()
            self._graphs = None
            self._arena = self._workspace = self._io = None
            self._closed = True

    # internals -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _busy(self, kind: str) -> Iterator[Call]:
        me = threading.get_ident()
        if not self._busy_lock.acquire(blocking=False):
            raise ContextBusyError(f"context {self.name!r} is inside a call on another thread; a context runs "
                                   "one inference at a time: create one execution context per thread "
                                   "(engine.create_execution_context())")
        try:
            if self._owner is not None and self._owner != me and self._in_flight():
                raise ContextBusyError(f"context {self.name!r} still runs work that another thread queued with "
                                       "enqueue(); a context belongs to one thread at a time: create one "
                                       "execution context per thread (engine.create_execution_context()), or "
                                       "synchronise the other thread's stream before handing the context over")
            if self._closed:
                raise ExecutionError(f"context {self.name!r} was closed; create a new one with "
                                     "engine.create_execution_context()")
            if kind != "close":
                self._raise_profile_error()
            self._owner = me
            call = Call(self._queries, kind, self.profiler, list(self.step_hooks))
            self._queries += 1
            yield call
        finally:
            self._busy_lock.release()

    def _in_flight(self) -> bool:
        return self._done_event is not None and not self._done_event.query()

    def _wait_pending(self) -> None:
        """Waits for the work this context queued (on every stream); errors stay with the streams."""
        if self._done_stream is not None:
            self._done_event.synchronize()
            self._done_stream = None

    def _raise_profile_error(self) -> None:
        err, self._profile_error = self._profile_error, None
        if err is not None:
            raise err

    def report_profile_error(self, error: BaseException) -> None:
        """Keeps the first error a profiler or step hook raised off the caller's thread (a stream worker,
        the resolver thread); the context's next call or ``wait_profiles`` raises it."""
        if self._profile_error is None:
            self._profile_error = error

    def _stream_for_execute(self) -> Any:
        if self._sync_stream is None:
            if self.device.kind == "cpu":
                from ..device.cpu import CpuStream
                self._sync_stream = CpuStream(inline=True, name=f"{self.name}/execute")
            else:
                self._sync_stream = self.device.create_stream()
        return self._sync_stream

    def _get_default_stream(self) -> Any:
        if self._default_stream is None:
            self._default_stream = self.device.create_stream()
        return self._default_stream

    def _check_stream(self, stream: Any, event: Any) -> None:
        from ..device.cpu import CpuEvent, CpuStream
        cpu = self.device.kind == "cpu"
        if cpu != isinstance(stream, CpuStream) or not hasattr(stream, "synchronize"):
            raise BindingError(f"stream {stream!r} does not belong to the {self.device.spec} device; "
                               f"create it with engine.device.create_stream()")
        if event is not None and cpu != isinstance(event, CpuEvent):
            raise BindingError(f"input_consumed {event!r} is not an event of the {self.device.spec} device; "
                               "create it with engine.device.create_event()")

    def _check(self, given: Any, batch_size: int | None, for_enqueue: bool) -> tuple:
        plan = self.engine.plan
        if not isinstance(given, Mapping):
            raise BindingError(f"inputs must be a dict of name -> array, not {type(given).__name__}; "
                               f"this engine's inputs: {plan.inputs}")
        allowed = set(plan.inputs) | (set(plan.outputs) if for_enqueue else set())
        missing = [n for n in plan.inputs if n not in given]
        extra = [n for n in given if n not in allowed]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing input(s) {missing}")
            if extra:
                parts.append(f"unknown name(s) {extra}")
            raise BindingError(f"{' and '.join(parts)}; engine {plan.name!r} takes inputs {plan.inputs}"
                               + (f" and optional output bindings {plan.outputs}" if for_enqueue else ""))
        arrays, host, batches = {}, {}, {}
        for n, a in given.items():
            spec = plan.tensors[n]
            is_dev = self.device.kind != "cpu" and self.device.is_device_array(a)
            if for_enqueue and not self.device.is_device_array(a):
                raise BindingError(f"binding {n!r}: enqueue needs arrays on the {self.device.spec} device "
                                   f"(got {type(a).__name__}); use execute() for host arrays or copy with "
                                   "engine.device.to_device()")
            if not is_dev:
                if type(a).__module__.split(".")[0] == "cupy":
                    raise BindingError(f"input {n!r} is a CuPy array but the engine runs on {self.device.spec}; "
                                       "pass a NumPy array (cupy.asnumpy)")
                try:
                    a = np.asarray(a)
                except Exception as exc:
                    raise BindingError(f"input {n!r} could not be read as an array: {exc}") from None
            want = (None,) + tuple(spec.shape)
            shape = tuple(a.shape)
            if len(shape) != len(want) or shape[1:] != want[1:]:
                raise BindingError(f"{'binding' if for_enqueue else 'input'} {n!r} has shape {shape}; expected "
                                   f"(batch, {', '.join(map(str, spec.shape))}) — per-sample shape {tuple(spec.shape)} "
                                   "with a leading batch dimension")
            self._check_dtype(n, a, spec.dtype, exact=for_enqueue or n in plan.outputs)
            if spec.dtype == "int32" and a.dtype != np.int32 and a.size:
                lo, hi = int(a.min()), int(a.max())
                if lo < -2**31 or hi >= 2**31:
                    raise BindingError(f"input {n!r} holds values {lo}..{hi} outside the int32 range")
            if for_enqueue and not a.flags.c_contiguous:
                raise BindingError(f"binding {n!r} is not C-contiguous; pass a contiguous array")
            arrays[n], host[n], batches[n] = a, not is_dev, shape[0]
        in_batches = {batches[n] for n in plan.inputs}
        if len(in_batches) != 1:
            raise BatchSizeError(f"inputs disagree on the batch size: {{{', '.join(f'{n}: {batches[n]}' for n in plan.inputs)}}}")
        available = in_batches.pop()
        batch = available if batch_size is None else batch_size
        if not isinstance(batch, (int, np.integer)) or isinstance(batch, bool) or batch < 1:
            raise BatchSizeError(f"batch_size must be a positive int, not {batch!r}")
        batch = int(batch)
        if batch > plan.max_batch_size:
            raise BatchSizeError(f"batch of {batch} is larger than this engine's max_batch_size "
                                 f"({plan.max_batch_size}); split the batch or build with a larger "
                                 "BuilderConfig(max_batch_size=...)")
        short = {n: b for n, b in batches.items() if b < batch}
        if short:
            raise BatchSizeError(f"batch_size={batch} but these arrays hold fewer samples: {short}")
        return batch, arrays, host

    @staticmethod
    def _check_dtype(name: str, a: Any, declared: str, exact: bool) -> None:
        dt = np.dtype(a.dtype)
        if dt == np.dtype(declared):
            return
        if not exact:
            if declared.startswith("float") and dt.kind == "f":
                return
            if declared == "int32" and dt.kind in "iu":
                return
        raise BindingError(f"{name!r} has dtype {dt}; the engine expects {declared}"
                           + ("" if exact else " (any float dtype is converted for float inputs, any integer "
                                               "dtype for int32 inputs)"))

    def _bindings(self, batch: int, inputs: dict, outputs: dict) -> dict:
        """name -> array for every input and output of one inference (the context's own output
        buffers where the caller gave none)."""
        b = dict(inputs)
        for n in self.engine.plan.outputs:
            b[n] = outputs[n] if n in outputs else self._io_views[n][:batch]
        return b

    def _bind(self, batch: int, bindings: dict) -> dict:
        """Every tensor the step loop reads or writes: activations (views cached per batch size),
        constants and the bindings."""
        fixed = self._fixed.get(batch)
        if fixed is None:
            fixed = self._fixed[batch] = {n: v[:batch] for n, v in self._act.items()}
            fixed.update(self._const)
        tensors = dict(fixed)
        tensors.update(bindings)
        return tensors

    def _launch(self, call: Call, batch: int, bindings: dict, stream: Any, input_consumed: Any,
                sync: bool = True) -> None:
        """Runs (CPU) or launches (CUDA, on ``stream``) every step for ``batch`` samples. On the CPU
        ``input_consumed`` is the function that reaches the event (``CpuEvent.arm``)."""
        cuda = self.device.kind != "cpu"
        if cuda and self.cuda_graph and self._graphs is not None and \
                self._graphs.run(call, batch, bindings, stream, input_consumed, sync):
            return                              # replayed: no step loop, no per-call tensor views
        tensors = self._bind(batch, bindings)
        with (stream if cuda else contextlib.nullcontext()):
            if self._last_input_reader < 0 and input_consumed is not None:
                self._mark(input_consumed, stream)
            if call.profiled:
                from .profiled import launch_profiled
                launch_profiled(self, call, batch, tensors, stream, input_consumed, sync)
                return
            for i, (s, op, weights, bf16) in enumerate(self._steps):
                self._run_step(i, s, op, weights, bf16, batch, tensors, stream, input_consumed)
            set_current_layer("")

    def _run_step(self, i, s, op, weights, bf16, batch, tensors, stream, input_consumed) -> None:
        env = self._env
        env.reset_scratch()
        set_current_layer(s.name)
        outs = [tensors[t] for t in s.outputs]
        try:
            op.compute(env, [tensors[t] for t in s.inputs], outs, s.params, weights)
        except Exception as exc:
            set_current_layer("")
            kind = s.type if s.type != "plugin" else f"plugin {s.params.get('plugin')!r}"
            why = str(exc) if isinstance(exc, PerfkitError) else f"{type(exc).__name__}: {exc}"
            raise ExecutionError(f"layer {s.name!r} ({kind}) failed at batch {batch}: {why}") from exc
        if bf16:
            for o in outs:
                round_bf16(self.device.xp, o)
        if i == self._last_input_reader and input_consumed is not None:
            self._mark(input_consumed, stream)

    # profiling support (used by runtime/profiled.py) -----------------------------------------------
    def _take_events(self, n: int) -> list:
        with self._pool_lock:
            if self._event_pool and len(self._event_pool[-1]) >= n:
                return self._event_pool.pop()
        return [self.device.create_event() for _ in range(n)]

    def _return_events(self, events: list) -> None:
        with self._pool_lock:
            self._event_pool.append(events)

    def _cuda_clock(self, stream: Any) -> Any:
        if self._clock is None:
            from .profiled import CudaClock
            self._clock = CudaClock(self.device, stream)
        return self._clock

    def _resolver(self) -> Any:
        if self._resolver_obj is None:
            from .profiled import _Resolver
            self._resolver_obj = _Resolver(self.report_profile_error)
        return self._resolver_obj

    def _mark(self, event: Any, stream: Any) -> None:
        if self.device.kind == "cpu":
            event()
        else:
            event.record(stream)

    def __repr__(self) -> str:
        return f"<ExecutionContext {self.name!r} on {self.device.spec}, {self.device_memory_bytes} bytes>"


def _release(allocator: Any, buffers: list, env: Any, graphs: Any) -> None:
    if graphs is not None:
        graphs.close()
    env.close()
    for b in buffers:
        allocator.free(b)
