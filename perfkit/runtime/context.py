"""ExecutionContext: runs an engine, synchronously (``execute``) or on a stream (``enqueue``).

The context holds the public API, the one-thread-at-a-time check and the streams it creates; the
rest lives in small modules with an explicit interface between them: ``bindings.py`` validates
what a call hands over, ``buffers.py`` carves the context's memory into tensor views,
``launch.py`` runs the step loop (``Call``, ``StepLoop``, ``Pending``, ``Launcher``), and
``profiled.py`` / ``cuda_graph.py`` are the profiled and CUDA-graph launch paths.
"""
from __future__ import annotations

import contextlib
import threading
import time
import weakref
from typing import Any, Iterator, Mapping

import numpy as np

from ..errors import ContextBusyError, ExecutionError
from .bindings import BindingCache, check_bindings_cached, check_stream
from .buffers import ContextBuffers
from .express import Express, signature, try_enqueue, try_execute
from .launch import Call, Launcher, Pending, StepLoop
from .profiled import Profiling


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

    Every accepted call gets a query id (from 0, per context), carried with the profiler and step hooks
    set when it was submitted through the step loop to the profiler (``profiler``, ``step_hooks``);
    ``observers`` get ``on_call(call, bindings)`` for each call (see ``launch.Call``).
    """

    def __init__(self, engine: Any, name: str, cuda_graph: bool = True):
        from ..errors import ArgumentError
        from .engine import Engine
        if not isinstance(engine, Engine):
            raise ArgumentError(f"ExecutionContext: engine must be a perfkit Engine, not {type(engine).__name__}; "
                                "build one with perfkit.Builder(...).build(network, config) and call "
                                "engine.create_execution_context()")
        if not isinstance(name, str):
            raise ArgumentError(f"ExecutionContext: name must be a str, not {type(name).__name__} {name!r:.40}")
        self.engine = engine
        self.name = name
        self.device = engine.device
        self.owner = f"context:{name}"
        with self.device.activate():            # its buffers and streams live on its device
            self._buffers = ContextBuffers(engine, self.owner)
            self._loop = StepLoop(engine, self._buffers.env)
            self._pending = Pending(self.device)
            self._profiling = Profiling(self.device)
            self._graphs = None
            if self.device.kind == "cuda":
                from .cuda_graph import GraphRunner
                self._graphs = GraphRunner(self.device, engine.allocator, self.owner, engine.plan, self._loop,
                                           self._buffers, self._profiling, self._pending.wait)
        self._launcher = Launcher(self.device, self._loop, self._buffers, self._profiling, self._graphs)
        self.cuda_graph = cuda_graph
        self._finalizer = weakref.finalize(self, _release, self._buffers, self._graphs, self._profiling)
        self._busy_lock = threading.Lock()
        self._owner: int | None = None          # thread id of the last caller
        self._queries = 0                       # the next query id
        self._sync_stream = None
        self._default_stream = None
        self._closed = False
        self._seen, self._seen_enqueue = BindingCache(), BindingCache()   # validation skipped (bindings.py)
        self._express, self._express_enqueue = Express(), Express()      # the warm replay path (express.py)
        # profiling (see runtime/profiled.py): an IProfiler, step hooks, and call observers
        self.profiler: Any = None
        self.step_hooks: list = []
        self.observers: list = []

    # public API ----------------------------------------------------------------------------------
    @property
    def device_memory_bytes(self) -> int:
        """Bytes this context took: activations, workspace and I/O buffers."""
        return self._buffers.nbytes

    @property
    def cuda_graph(self) -> bool:
        """Whether this context replays CUDA graphs once warm (CUDA only; see ``graph_status``)."""
        return self._launcher.use_graphs

    @cuda_graph.setter
    def cuda_graph(self, on: bool) -> None:
        self._launcher.use_graphs = bool(on)

    def execute(self, inputs: Mapping[str, Any], batch_size: int | None = None) -> dict:
        """Runs one inference and waits for it. ``inputs``: name -> array with a leading batch
        dimension (host NumPy or, on CUDA, device CuPy arrays). Returns name -> array: NumPy when
        any input was a host array, else device arrays (fresh copies either way). On CUDA the work is
        ordered after what is queued on CuPy's current stream, so device inputs computed just before are
        read once they are written."""
        if batch_size is None and self._graphs is not None:
            result = try_execute(self, self._express, inputs)
            if result is not None:
                return result
        with self._busy("execute") as call:
            batch, arrays, host = check_bindings_cached(self._seen, self.engine.plan, self.device, inputs,
                                                        batch_size, False)
            call.batch = batch
            self._accept(call)
            self._pending.wait()
            stream = call.stream = self._stream_for_execute()
            bufs, dev = self._buffers, self.device
            bufs.after_caller(stream)            # inputs the caller's stream is still writing are read once written
            bound = {}
            for n, a in arrays.items():
                dst = bound[n] = bufs.io(n, batch)
                if host[n] and bufs.pinned:
                    staged = bufs.pinned[n][:batch]
                    np.copyto(staged, a[:batch], casting="unsafe")
                    dev.to_device(staged, stream=stream, out=dst)
                elif host[n]:
                    dev.to_device(a[:batch], stream=stream, out=dst)
                elif a.dtype == dst.dtype and a.flags.c_contiguous:
                    bound[n] = a if a.shape[0] == batch else a[:batch]   # read where it is
                else:
                    dst[...] = a[:batch]
            self._launcher.launch(call, bufs.bindings(batch, bound, {}), stream, None, sync=True)
            outs = {n: bufs.io(n, batch) for n in self.engine.plan.outputs}
            copies = None if any(host.values()) else bufs.copies(outs, stream)   # before the synchronisation
            stream.synchronize()
            self._profiling.run_deferred()
            replayed = self._replayed(call, batch_size)
            if replayed is not None and all(bound[n] is a for n, a in inputs.items()):
                self._express.remember(signature(inputs), stream, replayed, outs)   # read where they were
            call.t1_ns = time.perf_counter_ns()
            for ob in self.observers:
                ob.on_call(call, inputs)
            if any(host.values()) and bufs.pinned:
                result = {}
                for n, v in outs.items():
                    dev.to_host(v, stream=stream, out=bufs.pinned[n][:batch])
                stream.synchronize()
                for n in outs:
                    result[n] = bufs.pinned[n][:batch].copy()
                return result
            if any(host.values()):
                return {n: dev.to_host(v, stream=stream) for n, v in outs.items()}
            return copies

    def enqueue(self, bindings: Mapping[str, Any], stream: Any = None, input_consumed: Any = None,
                batch_size: int | None = None) -> dict:
        """Queues one inference on ``stream`` and returns at once (guide 2.2).

        ``bindings``: name -> device array for every input, and optionally for outputs (otherwise the
        context's own output buffers are used; they are overwritten by the next call). Returns
        name -> output array, valid once the stream has reached this work. ``input_consumed``
        (an event of the device) fires as soon as the inputs may be refilled (guide 1.3).
        The work is ordered after this context's earlier work on any stream.
        """
        if input_consumed is None and batch_size is None and self._graphs is not None:
            result = try_enqueue(self, self._express_enqueue, bindings, stream)
            if result is not None:
                return result
        given = bindings
        with self._busy("enqueue") as call:
            plan = self.engine.plan
            if stream is None:
                stream = self._get_default_stream()
            check_stream(self.device, stream, input_consumed)
            batch, arrays, _ = check_bindings_cached(self._seen_enqueue, plan, self.device, bindings, batch_size,
                                                     True)
            call.batch, call.stream = batch, stream
            self._accept(call)
            # a CuPy slice costs microseconds: arrays of exactly the batch are used as they are
            inputs = {n: a if len(a) == batch else a[:batch] for n, a in arrays.items() if n in plan.inputs}
            outputs = {n: a if len(a) == batch else a[:batch] for n, a in arrays.items() if n in plan.outputs}
            self._pending.order(stream)         # our buffers may still be in use on another stream
            bindings = self._buffers.bindings(batch, inputs, outputs)
            launch = self._launcher.launch
            if self.device.kind == "cpu":
                consumed = None if input_consumed is None else input_consumed.arm()

                def work() -> None:
                    try:
                        launch(call, bindings, stream, consumed, sync=False)
                    finally:
                        if consumed is not None:
                            consumed()          # a failed inference no longer reads its inputs either
                try:
                    stream.submit(work)
                except BaseException:
                    if consumed is not None:
                        consumed()              # the work will not run: nothing may wait for it
                    raise
            else:
                launch(call, bindings, stream, input_consumed, sync=False)
            self._pending.queued(stream)
            call.t1_ns = time.perf_counter_ns()
            for ob in self.observers:
                ob.on_call(call, bindings)
            result = {n: bindings[n] for n in plan.outputs}
            replayed = self._replayed(call, batch_size)
            own = all(n not in given or result[n] is given[n] for n in plan.outputs)   # no slice made here
            if replayed is not None and input_consumed is None and own:
                self._express_enqueue.remember(signature(given), stream, replayed, dict(result))
            return result

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
        :class:`ProfilerError` if a profiler raised since the last call."""
        self._pending.wait()
        self._profiling.drain()
        self._profiling.raise_error()

    def close(self) -> None:
        """Waits for this context's work, closes the streams it created and returns its buffers to
        the allocator. A profiler error not yet reported is dropped. Closing twice does nothing."""
        if self._closed:
            return
        with self._busy("close"):
            self._pending.wait()
            self._profiling.drain()
            streams, self._default_stream, self._sync_stream = (self._default_stream, self._sync_stream), None, None
            self._express.forget()
            self._express_enqueue.forget()
            self._finalizer()
            self._graphs = self._launcher.graphs = None
            self._closed = True
            for s in streams:                   # last: an error left on one is raised once all is closed
                if s is not None and hasattr(s, "close"):
                    s.close()

    # internals -----------------------------------------------------------------------------------
    def _replayed(self, call: Call, batch_size: Any) -> Any:
        """The graph this call replayed, when a repeat of it may take the fast path (``express.py``):
        no batch size asked for, nothing that watches calls."""
        graphs = self._graphs
        if graphs is None or not self._launcher.use_graphs or graphs.last_launched is None \
                or batch_size is not None or call.profiled or self.observers:
            return None
        return graphs.last_launched

    @contextlib.contextmanager
    def _busy(self, kind: str) -> Iterator[Call]:
        me = threading.get_ident()
        if not self._busy_lock.acquire(blocking=False):
            raise ContextBusyError(f"context {self.name!r} is inside a call on another thread; a context runs "
                                   "one inference at a time: create one execution context per thread "
                                   "(engine.create_execution_context())")
        try:
            if self._owner is not None and self._owner != me and self._pending.in_flight():
                raise ContextBusyError(f"context {self.name!r} still runs work that another thread queued with "
                                       "enqueue(); a context belongs to one thread at a time: create one "
                                       "execution context per thread (engine.create_execution_context()), or "
                                       "synchronise the other thread's stream before handing the context over")
            if self._closed:
                raise ExecutionError(f"context {self.name!r} was closed; create a new one with "
                                     "engine.create_execution_context()")
            if kind != "close":
                self._profiling.raise_error()
            self._owner = me
            call = Call(self, -1, kind, self.profiler, list(self.step_hooks))
            with self.device.activate():        # a context on cuda:1 runs there from any thread
                yield call
        finally:
            self._busy_lock.release()

    def _accept(self, call: Call) -> None:
        """Gives a call whose arguments passed validation its query id: a rejected call takes none."""
        call.query = self._queries
        self._queries += 1

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

    def __repr__(self) -> str:
        return f"<ExecutionContext {self.name!r} on {self.device.spec}, {self.device_memory_bytes} bytes>"


def _release(buffers: ContextBuffers, graphs: Any, profiling: Any) -> None:
    if graphs is not None:
        graphs.close()
    buffers.release()
    profiling.close()
