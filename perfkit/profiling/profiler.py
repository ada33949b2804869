"""Per-layer profiling (guide 1.4): the IProfiler protocol and the built-in LayerTimer.

A profiler is any object with ``report_layer_time(layer_name: str, ms: float)``; set it with
``context.profiler = p``; a call uses the profiler that was set when it was submitted. The context
calls it once per engine layer per inference, in execution order, in ``execute`` and in ``enqueue``
alike (for asynchronous work, once the stream has reached the end of the inference, from the
stream's worker or a resolver thread). If the profiler raises, the context raises
:class:`~perfkit.errors.ProfilerError` on its next call (and ``profile`` at its exit).
A profiler may instead offer ``record_inference(context, batch, stream, clock, layers, query=...)``,
perfkit's richer callback (a profiler that also has ``_record_inference`` gets that one: the same call
without argument checks): :class:`LayerTimer` does, and so receives each layer's start and end on
the ``perf_counter_ns`` timeline, the stream, batch size, precision, and the context's query id of
the call: its ``frame`` is the ``layer_times`` frame.
"""
from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..errors import ArgumentError
from ..frames.schemas import LAYER_TIMES

_INF = float("inf")
_CLOCKS = ("host", "cuda_event")


def _checked_report(layer_name: Any, ms: Any) -> float:
    """The slow path of ``report_layer_time``: refuses what the fast check let through, or returns ``ms``."""
    from ..arguments import number
    if not isinstance(layer_name, str):
        raise ArgumentError(f"report_layer_time: layer_name must be a str, not {type(layer_name).__name__} "
                            f"{layer_name!r:.40}; pass the engine layer's name")
    return number(ms, f"report_layer_time({layer_name!r}): ms", minimum=0.0)


def _check_inference_scalars(context: Any, batch: Any, stream: Any, clock: Any, query: Any) -> None:
    from ..arguments import integer, one_of
    if not isinstance(getattr(context, "name", None), str):
        raise ArgumentError(f"LayerTimer.record_inference: context must be an execution context, not "
                            f"{type(context).__name__} {context!r:.40}")
    integer(batch, "LayerTimer.record_inference: batch", minimum=1)
    if not isinstance(stream, str):
        raise ArgumentError(f"LayerTimer.record_inference: stream must be the stream's name (a str), not "
                            f"{type(stream).__name__} {stream!r:.40}")
    one_of(clock, _CLOCKS, "LayerTimer.record_inference: clock")
    if query is not None:
        integer(query, "LayerTimer.record_inference: query (the context's query id)", minimum=0)


@runtime_checkable
class Profiler(Protocol):
    def report_layer_time(self, layer_name: str, ms: float) -> None: ...


class LayerTimer:
    """Collects every layer of every profiled inference; thread-safe."""

    def __init__(self, run_id: str | None = None):
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self._lock = threading.Lock()
        self._rows: list = []
        self._iteration = 0
        self._queries: list = []
        self.plain_reports: list = []       # (layer, ms) reported through the bare protocol by others

    # the IProfiler protocol ----------------------------------------------------------------------
    def report_layer_time(self, layer_name: str, ms: float) -> None:
        """One layer's time: ``layer_name`` a str, ``ms`` a finite number of milliseconds, at least 0."""
        if type(layer_name) is not str or type(ms) is not float or not 0.0 <= ms < _INF:   # cheap when good
            ms = _checked_report(layer_name, ms)
        with self._lock:
            self.plain_reports.append((layer_name, ms))

    # perfkit's richer callback -------------------------------------------------------------------
    def record_inference(self, context: Any, batch: int, stream: str, clock: str, layers: Any,
                         query: int | None = None) -> None:
        """``layers``: (index, name, type, precision, start_ns, end_ns) per engine layer, in order;
        ``query``: the context's id of the call. Every argument is checked (each row: six fields, a str
        name, an end not before its start); execution contexts call :meth:`_record_inference`, the same
        without the checks, since their rows are well-formed by construction and a check per layer
        would add to the profiling overhead perfkit reports."""
        if type(batch) is not int or batch < 1 or type(stream) is not str or clock not in _CLOCKS \
                or type(getattr(context, "name", None)) is not str \
                or (query is not None and (type(query) is not int or query < 0)):
            _check_inference_scalars(context, batch, stream, clock, query)
        if type(layers) is not list and type(layers) is not tuple:
            raise ArgumentError(f"LayerTimer.record_inference: layers must be a list of (index, name, type, "
                                f"precision, start_ns, end_ns) tuples, not {type(layers).__name__}")
        for row in layers:
            try:
                good = len(row) == 6 and type(row[1]) is str and row[5] >= row[4]
            except TypeError:
                good = False
            if not good:
                raise ArgumentError(f"LayerTimer.record_inference: layer row {row!r:.80} is not (index, name, type, "
                                    "precision, start_ns, end_ns) with a str name and end_ns >= start_ns; pass the "
                                    "rows of one inference as the execution context reports them")
        self._record_inference(context, batch, stream, clock, list(layers), query)

    def _record_inference(self, context: Any, batch: int, stream: str, clock: str, layers: Any,
                          query: int | None = None) -> None:
        """The execution context's per-inference entry point: kept as given (cheap on the inference's
        path); rows are built when the frame is asked for."""
        with self._lock:
            self._rows.append((self._iteration, context.name, int(batch), stream, clock, layers))
            self._queries.append((self._iteration, id(context), query))
            self._iteration += 1

    def queries(self) -> list:
        """(iteration, id of the context, the context's query id) per recorded inference, in the
        order they were reported: what joins ``frame['iteration']`` to the calls that ran."""
        with self._lock:
            return list(self._queries)

    @property
    def iterations(self) -> int:
        return self._iteration

    @property
    def frame(self) -> pd.DataFrame:
        with self._lock:
            batches = list(self._rows)
        rows = [{"run_id": self.run_id, "iteration": it, "index": index, "layer": name, "type": type_,
                 "start_ns": int(t0), "end_ns": int(t1), "ms": (t1 - t0) / 1e6, "stream": stream, "context": ctx,
                 "batch_size": batch, "precision": precision, "clock": clock}
                for it, ctx, batch, stream, clock, layers in batches
                for index, name, type_, precision, t0, t1 in layers]
        return LAYER_TIMES.frame(rows, {"run_id": self.run_id})

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._queries.clear()
            self._iteration = 0
            self.plain_reports.clear()


def calibrate_event_cost(device: Any, samples: int = 200) -> float:
    """Host nanoseconds one layer boundary costs the profiler (a timestamp on the CPU, an event
    record on CUDA), measured now on this device: the median of ``samples``."""
    from ..arguments import positive_int
    from ..device import get_device
    device = get_device(device)
    samples = positive_int(samples, "calibrate_event_cost: samples", maximum=1_000_000)
    if device.kind == "cpu":
        t = np.empty(samples)
        for i in range(samples):
            a = time.perf_counter_ns()
            b = time.perf_counter_ns()
            t[i] = b - a
        return float(np.median(t))
    from cupy.cuda import runtime
    stream = device.create_stream()
    events = [device.create_event() for _ in range(samples)]
    ptrs, sp, record = [e.raw.ptr for e in events], stream.raw.ptr, runtime.eventRecord
    t0 = time.perf_counter_ns()
    for p in ptrs:           # the same call the profiled step loop makes at each layer boundary
        record(p, sp)
    t1 = time.perf_counter_ns()
    stream.synchronize()
    return (t1 - t0) / samples
