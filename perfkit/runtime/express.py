"""The host fast path of a warm CUDA context: a call that repeats the last replayed call.

After a call of ``execute`` or ``enqueue`` has replayed a CUDA graph, the context remembers what made
that replay possible: the bindings' *signature* (per name: array type, shape, dtype, strides and
device address), the stream, and the graph. A later call whose bindings have the same signature,
on the same stream, by the same thread, with no profiler, step hook or observer set, would pass
every check of the full path and pick the same graph, so it goes straight to the launch: the busy
lock, the ordering event, one ``cudaGraphLaunch``, and (``execute``) the output copies and the
synchronisation. Anything else (a new address, another stream or thread, a batch size asked for,
an ``input_consumed`` event, a profiler) takes the full path, which validates everything and may
remember the new call.

The record is dropped with the graph: an evicted or closed graph has no executable any more, and
a context whose graphs were switched off or failed never takes this path.

Measured on an H200 (``benchmarks/mlp_diagnosis.py``, MNIST MLP at batch 1): a bare launch of the
context's own graph plus a synchronisation takes 14.2 us; ``enqueue`` plus a synchronisation took 45.6 us
through the full path and 19.0 us through this one, ``execute`` 68.8 and 24.3 us (its fresh output copy
included).
"""
from __future__ import annotations

import threading
from typing import Any


def signature(given: Any) -> tuple | None:
    """Per binding (name, type, shape, dtype, strides, device address), or None when ``given`` is not
    a dict of device arrays (a host array has no ``data.ptr``)."""
    if type(given) is not dict:
        return None
    try:
        return tuple((n, type(a), a.shape, a.dtype, a.strides, a.data.ptr) for n, a in given.items())
    except AttributeError:
        return None


class Express:
    """One remembered replay: its bindings' signature, stream, graph and what the call returns
    (``enqueue``: the output bindings; ``execute``: the context's output buffers to copy)."""

    __slots__ = ("key", "stream", "graph", "outputs", "hits")

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.stream: Any = None
        self.graph: Any = None
        self.outputs: dict = {}
        self.hits = 0                           # calls that took this path (tests, diagnosis)

    def remember(self, key: tuple | None, stream: Any, graph: Any, outputs: dict) -> None:
        """Keeps this replay for the next call; a call without a signature (not a dict of device
        arrays) forgets the last one instead."""
        if key is None:
            self.forget()
        else:
            self.key, self.stream, self.graph, self.outputs = key, stream, graph, outputs

    def forget(self) -> None:
        self.key, self.stream, self.graph, self.outputs = None, None, None, {}

    def matches(self, ctx: Any, given: Any, stream: Any) -> bool:
        """Whether a call of ``ctx`` with ``given`` on ``stream`` is the remembered one, before locking."""
        graph = self.graph
        return (graph is not None and stream is self.stream and graph.exec_ptr != 0 and ctx.profiler is None
                and not ctx.step_hooks and not ctx.observers and ctx._launcher.use_graphs
                and signature(given) == self.key)


def try_enqueue(ctx: Any, ex: Express, given: Any, stream: Any) -> dict | None:
    """The outputs of a replay of the remembered graph on ``stream``, or None: take the full path."""
    if stream is None:
        stream = ctx._default_stream
    if not ex.matches(ctx, given, stream):
        return None
    lock = ctx._busy_lock
    if not lock.acquire(blocking=False):
        return None                             # the full path raises ContextBusyError
    try:
        graph = ex.graph
        if not _ready(ctx, graph):
            return None
        previous = _use_device(ctx.device.index)
        try:
            pending = ctx._pending
            pending.order(stream)               # after the context's work on another stream, if any
            _count(ctx, graph)                  # accepted: counted even if the launch fails, as the full path does
            graph.launch(stream.raw.ptr)
            pending.queued(stream)
        finally:
            _restore_device(previous)
        ex.hits += 1
        return dict(ex.outputs)
    finally:
        lock.release()


def try_execute(ctx: Any, ex: Express, given: Any) -> dict | None:
    """Fresh copies of the outputs of a replay of the remembered graph, synchronised, or None."""
    stream = ctx._sync_stream
    if stream is None or not ex.matches(ctx, given, stream):
        return None
    lock = ctx._busy_lock
    if not lock.acquire(blocking=False):
        return None
    try:
        graph = ex.graph
        if not _ready(ctx, graph) or ctx._pending.in_flight():
            return None                         # queued work first: the full path waits for it
        previous = _use_device(ctx.device.index)
        try:
            _count(ctx, graph)
            bufs = ctx._buffers
            bufs.after_caller(stream)
            graph.launch(stream.raw.ptr)
            result = bufs.copies(ex.outputs, stream)   # allocated from the context's device's pool
            stream.synchronize()
        finally:
            _restore_device(previous)
        ex.hits += 1
        return result
    finally:
        lock.release()


def _ready(ctx: Any, graph: Any) -> bool:
    """Under the busy lock: the caller owns the context, which is open, has no profiler error to
    report, and still holds the graph."""
    return (ctx._owner == threading.get_ident() and not ctx._closed and not ctx._profiling.has_error
            and graph.exec_ptr != 0 and graph.key in ctx._graphs.graphs)


def _use_device(index: int) -> int:
    """Makes the context's GPU the thread's current one for the call, as the full path does (a context on
    cuda:1 called from a thread on cuda:0); returns the device to restore, or -1 when it already was.
    ``cudaSetDevice`` costs well under a microsecond; CuPy's ``Device`` context manager costs several."""
    from cupy.cuda import runtime
    current = runtime.getDevice()
    if current == index:
        return -1
    runtime.setDevice(index)
    return current


def _restore_device(previous: int) -> None:
    if previous >= 0:
        from cupy.cuda import runtime
        runtime.setDevice(previous)


def _count(ctx: Any, graph: Any) -> None:
    ctx._queries += 1
    runner = ctx._graphs
    runner.replays += 1
    runner.graphs.move_to_end(graph.key)        # still the most recently used: eviction is least-recent first
