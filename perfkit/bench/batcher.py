"""Opportunistic batching (guide 2.1): many clients send single requests; a batcher waits a short while
for more, runs them as one batch on the smallest engine that fits, and hands each caller its own rows.

``DynamicBatcher`` keeps one FIFO queue of requests and ``instances`` worker threads; each instance
owns one execution context per engine (a context serves one thread, guide 2.3). An idle instance takes
the oldest request and waits until the queued rows fill ``max_batch_size`` or until that request has
waited ``max_delay_ms``, then takes whole requests in order while they fit (a request is never split
and never shares rows with another caller), copies them into one batch, runs it, and slices each
caller's outputs back out. ``close()`` refuses new requests and runs every queued one before returning.
"""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
import threading
import time
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..arguments import flag, number, optional_positive_int, positive_int
from ..errors import ArgumentError, BatchSizeError, ExecutionError
from ..frames.schemas_load import BATCHER_REQUESTS
from ..log import get_logger

_log = get_logger("bench.batcher")
MAX_INSTANCES = 64
#: finished requests kept for :meth:`DynamicBatcher.requests` (the oldest are dropped beyond it: a long-running
#: batcher's memory stays bounded, about 0.5 GB at this many)
RECORDS_KEPT = 1_000_000


class _Request:
    __slots__ = ("id", "arrays", "rows", "single", "future", "submit_ns")

    def __init__(self, rid: int, arrays: dict, rows: int, single: bool, future: concurrent.futures.Future):
        self.id, self.arrays, self.rows, self.single, self.future = rid, arrays, rows, single, future
        self.submit_ns = time.perf_counter_ns()


class DynamicBatcher:
    """Serves single requests from many threads in batches (guide 2.1: opportunistic batching).

    ``engine_or_engine_set``: an Engine, or an EngineSet (each batch runs on the engine of the smallest
    max batch size that holds it). ``max_batch_size``: the most samples per batch (default: the largest
    engine's). ``max_delay_ms``: how long the oldest queued request may wait for others before its batch
    starts (0: run what is queued as soon as an instance is free). ``instances``: batches run at once,
    each by its own worker thread with its own execution contexts. ``warmup``: run every batch size twice
    on each instance before serving (on CUDA this captures each size's graph up front, so the first
    requests of a size do not pay for a capture).

    ``infer(inputs)`` blocks and returns the caller's outputs; ``submit(inputs)`` returns a
    ``concurrent.futures.Future`` of them (its ``request_id`` names the request's row in
    :meth:`requests`). ``inputs``: input name -> one sample (the per-sample shape) or ``n`` samples
    (a leading batch dimension, ``n <= max_batch_size``); outputs come back in the same form.
    """

    def __init__(self, engine_or_engine_set: Any, max_batch_size: int | None = None, max_delay_ms: float = 1.0,
                 instances: int = 1, name: str = "batcher", warmup: bool = False):
        self._engines = _engines(engine_or_engine_set)
        largest = max(self._engines)
        mbs = optional_positive_int(max_batch_size, "DynamicBatcher: max_batch_size")
        if mbs is not None and mbs > largest:
            raise BatchSizeError(f"DynamicBatcher: max_batch_size {mbs} is larger than the largest engine's "
                                 f"max_batch_size {largest}; pass at most {largest}, or build a larger engine")
        self.max_batch_size = mbs or largest
        self.max_delay_ms = number(max_delay_ms, "DynamicBatcher: max_delay_ms", minimum=0, maximum=60e3)
        self.instances = positive_int(instances, "DynamicBatcher: instances (batches run at once)",
                                      maximum=MAX_INSTANCES)
        if not isinstance(name, str) or not name.strip():
            raise ArgumentError(f"DynamicBatcher: name must be a non-empty str, not {name!r:.40}")
        self.name = name
        warmup = flag(warmup, "DynamicBatcher: warmup")
        eng = next(iter(self._engines.values()))
        self.device = eng.device
        self.input_names = list(eng.input_names)
        self.output_names = list(eng.output_names)
        self._specs = {n: (tuple(eng.get_binding_shape(n)), np.dtype(eng.get_binding_dtype(n)))
                       for n in self.input_names}
        self._cv = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._queued_rows = 0
        self._closed = False
        self._ids = itertools.count()
        self._batches = itertools.count()
        self._records: collections.deque = collections.deque(maxlen=RECORDS_KEPT)
        self._records_lock = threading.Lock()
        self._contexts: list = [{} for _ in range(self.instances)]    # per instance: engine max batch -> context
        self._staging: list = [{} for _ in range(self.instances)]
        if warmup:
            try:
                self._warm_up()
            except BaseException:
                for contexts in self._contexts:
                    for c in contexts.values():
                        c.close()
                raise
        self._threads = [threading.Thread(target=self._serve, args=(i,), name=f"perfkit-{name}-{i}", daemon=True)
                         for i in range(self.instances)]
        for t in self._threads:
            t.start()

    # public API ----------------------------------------------------------------------------------
    def submit(self, inputs: Mapping[str, Any]) -> concurrent.futures.Future:
        """Queues one request and returns a Future of its outputs (name -> array, the request's rows only).
        The Future's ``request_id`` is the request's number in :meth:`requests`."""
        arrays, rows, single = self._check(inputs)
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._cv:
            if self._closed:
                raise ExecutionError(f"DynamicBatcher {self.name!r} was closed; create a new one to serve more "
                                     "requests")
            req = _Request(next(self._ids), arrays, rows, single, fut)
            fut.request_id = req.id
            self._queue.append(req)
            self._queued_rows += rows
            self._cv.notify_all()
        return fut

    def infer(self, inputs: Mapping[str, Any]) -> dict:
        """Runs one request and waits for its outputs (name -> array: the caller's rows only)."""
        if threading.current_thread() in self._threads:
            raise ExecutionError(f"DynamicBatcher {self.name!r}: infer() was called on one of its own instance "
                                 "threads (from a Future callback?), which would wait for itself; use submit() there")
        return self.submit(inputs).result()

    def close(self, timeout_s: float | None = None) -> None:
        """Refuses new requests, runs every queued one, waits for the worker threads (at most
        ``timeout_s`` seconds; None: as long as it takes) and closes the contexts. Closing twice does nothing."""
        if timeout_s is not None:
            timeout_s = number(timeout_s, "DynamicBatcher.close: timeout_s", minimum=0)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for t in self._threads:
            if t is threading.current_thread():
                raise ExecutionError("DynamicBatcher.close was called from one of its own worker threads (a Future "
                                     "callback?); close it from another thread")
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        alive = sum(t.is_alive() for t in self._threads)
        if alive:
            raise ExecutionError(f"DynamicBatcher {self.name!r}: {alive} instance(s) still running after "
                                 f"{timeout_s} s; the queued requests will still be served. Call close() "
                                 "again to wait longer")
        _log.info("batcher %s closed after %d request(s)", self.name, len(self._records))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued_rows(self) -> int:
        """Samples waiting for a batch now."""
        return self._queued_rows

    def requests(self) -> pd.DataFrame:
        """One row per finished request (frame ``batcher_requests``; the last ``RECORDS_KEPT``): its batch, the
        engine that ran it, queue time, compute time and latency."""
        with self._records_lock:
            rows = list(self._records)
        df = BATCHER_REQUESTS.frame(sorted(rows, key=lambda r: r["request"]))
        df.attrs.update({"batcher": self.name, "max_batch_size": self.max_batch_size,
                         "max_delay_ms": self.max_delay_ms, "instances": self.instances,
                         "engine": next(iter(self._engines.values())).name, "device": self.device.spec,
                         "engine_batch_sizes": list(self._engines)})
        return df

    def __enter__(self) -> "DynamicBatcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<DynamicBatcher {self.name!r}: max batch {self.max_batch_size}, max delay {self.max_delay_ms:g} ms, "
                f"{self.instances} instance(s), engines {list(self._engines)}{' (closed)' if self._closed else ''}>")

    # internals -----------------------------------------------------------------------------------
    def _check(self, inputs: Any) -> tuple:
        """(arrays of shape (rows, *sample) in the engine's dtypes, copied; rows; single-sample form)."""
        if not isinstance(inputs, Mapping) or sorted(inputs) != sorted(self.input_names):
            got = sorted(inputs) if isinstance(inputs, Mapping) else type(inputs).__name__
            raise ArgumentError(f"DynamicBatcher: inputs must be a dict with exactly the engine's inputs "
                                f"{self.input_names}, got {got}")
        arrays, forms = {}, set()
        for n in self.input_names:
            shape, dtype = self._specs[n]
            a = inputs[n]
            if not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
                raise ArgumentError(f"DynamicBatcher: input {n!r} must be a numeric NumPy array of one sample "
                                    f"{shape} or of n samples (n, {', '.join(map(str, shape))}), got "
                                    f"{type(a).__name__} {getattr(a, 'dtype', '')}")
            if a.shape == shape:
                forms.add((True, 1))
                a = a[None]
            elif a.ndim == len(shape) + 1 and a.shape[1:] == shape and a.shape[0] >= 1:
                forms.add((False, a.shape[0]))
            else:
                raise ArgumentError(f"DynamicBatcher: input {n!r} has shape {a.shape}; give one sample {shape} or "
                                    f"n samples (n, {', '.join(map(str, shape))})")
            if a.dtype != dtype:
                raise ArgumentError(f"DynamicBatcher: input {n!r} is {a.dtype} but the engine takes {dtype}; pass "
                                    f"{dtype} data (a.astype(numpy.{dtype}))")
            arrays[n] = np.array(a, copy=True, order="C")     # the caller may reuse its array at once
        if len(forms) != 1:
            raise ArgumentError(f"DynamicBatcher: the inputs disagree on their samples ({sorted(forms)}); give every "
                                "input the same number of samples, all with or all without the batch dimension")
        single, rows = forms.pop()
        if rows > self.max_batch_size:
            raise BatchSizeError(f"DynamicBatcher: a request of {rows} samples is larger than max_batch_size "
                                 f"{self.max_batch_size}; split it, or make the batcher with a larger max_batch_size")
        return arrays, rows, single

    def _take(self) -> tuple | None:
        """Waits for a batch's worth of requests (see the class); None once closed and drained."""
        delay_ns = int(self.max_delay_ms * 1e6)
        with self._cv:
            while True:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return None
                deadline = self._queue[0].submit_ns + delay_ns
                now = time.perf_counter_ns()
                if self._queued_rows >= self.max_batch_size or self._closed or now >= deadline:
                    break
                self._cv.wait((deadline - now) / 1e9)
            trigger = ("full" if self._queued_rows >= self.max_batch_size else
                       "drain" if self._closed and time.perf_counter_ns() < deadline else "timeout")
            taken, rows = [], 0
            while self._queue and rows + self._queue[0].rows <= self.max_batch_size:
                req = self._queue.popleft()
                self._queued_rows -= req.rows
                if req.future.set_running_or_notify_cancel():
                    taken.append(req)
                    rows += req.rows
            if self._queue:
                self._cv.notify_all()      # what is left may already be due: another instance may take it
            return taken, rows, trigger, next(self._batches)

    def _warm_up(self) -> None:
        """Runs every batch size up to max_batch_size twice on each instance's contexts, on this thread, before
        the instances start (on CUDA the second run of a size captures its graph: serving then never pays for a
        capture, and no two threads capture at once)."""
        t0 = time.perf_counter()
        for i in range(self.instances):
            low = 0
            for mbs in self._engines:
                for rows in range(low + 1, min(mbs, self.max_batch_size) + 1):
                    ctx = self._context(i, mbs)
                    x = {n: b[:rows] for n, b in self._staging[i][mbs].items()}
                    for _ in range(2):
                        ctx.execute(x, rows)
                low = mbs
        _log.info("batcher %s warmed up in %.1f ms", self.name, (time.perf_counter() - t0) * 1e3)

    def _context(self, instance: int, mbs: int) -> Any:
        """The context of ``instance`` for the engine of max batch ``mbs`` (made, with its staging, on first use)."""
        contexts = self._contexts[instance]
        if mbs not in contexts:
            contexts[mbs] = self._engines[mbs].create_execution_context()
            self._staging[instance][mbs] = {n: np.zeros((mbs,) + s, d) for n, (s, d) in self._specs.items()}
        return contexts[mbs]

    def _serve(self, instance: int) -> None:
        contexts = self._contexts[instance]
        try:
            while True:
                got = self._take()
                if got is None:
                    return
                taken, rows, trigger, batch_no = got
                if not taken:
                    continue
                try:
                    self._run(instance, taken, rows, trigger, batch_no)
                except BaseException as exc:    # never leave a caller waiting, whatever failed
                    _log.exception("batcher %s: instance %d failed on batch %d", self.name, instance, batch_no)
                    for req in taken:
                        if not req.future.done():
                            req.future.set_exception(exc)
        finally:
            for c in contexts.values():
                try:
                    c.close()
                except Exception:       # noqa: BLE001 - closing must not hide the batcher's state
                    _log.exception("batcher %s: closing a context failed", self.name)

    def _run(self, instance: int, taken: list, rows: int, trigger: str, batch_no: int) -> None:
        mbs = next(b for b in self._engines if b >= rows)
        start = time.perf_counter_ns()
        try:
            ctx = self._context(instance, mbs)
            buf = self._staging[instance][mbs]
            at = 0
            for req in taken:
                for n, a in req.arrays.items():
                    buf[n][at:at + req.rows] = a
                at += req.rows
            out = ctx.execute({n: b[:rows] for n, b in buf.items()}, rows)
        except BaseException as exc:   # every caller of the batch learns why; the batcher goes on
            _log.warning("batcher %s: a batch of %d failed: %s", self.name, rows, exc)
            for req in taken:
                req.future.set_exception(exc)
            return
        end = time.perf_counter_ns()
        records, answers, at = [], [], 0
        for req in taken:
            mine = {n: (o[at] if req.single else o[at:at + req.rows]).copy() for n, o in out.items()}
            at += req.rows
            records.append({"request": req.id, "rows": req.rows, "batch": batch_no, "batch_size": rows,
                            "engine_batch_size": mbs, "instance": instance, "trigger": trigger,
                            "submit_ns": req.submit_ns, "start_ns": start, "end_ns": end,
                            "queue_ms": (start - req.submit_ns) / 1e6, "compute_ms": (end - start) / 1e6,
                            "latency_ms": (end - req.submit_ns) / 1e6})
            answers.append((req.future, mine))
        with self._records_lock:             # recorded before any caller is answered: an answered request
            self._records.extend(records)     # is always in requests()
        for future, mine in answers:
            future.set_result(mine)
        if _log.isEnabledFor(10):
            _log.debug("batch %d: %d request(s), %d sample(s) on the max-batch-%d engine (%s), %.3f ms", batch_no,
                       len(taken), rows, mbs, trigger, (end - start) / 1e6)


def _engines(engine_or_engine_set: Any) -> dict:
    """max batch size -> engine, smallest first."""
    from ..runtime.engine import Engine
    from ..runtime.engine_set import EngineDispatch
    if isinstance(engine_or_engine_set, EngineDispatch):
        engines = dict(engine_or_engine_set.engines)
    elif isinstance(engine_or_engine_set, Engine):
        engines = {engine_or_engine_set.max_batch_size: engine_or_engine_set}
    else:
        raise ArgumentError(f"DynamicBatcher: engine_or_engine_set must be a perfkit Engine or EngineSet, not "
                            f"{type(engine_or_engine_set).__name__} {engine_or_engine_set!r:.40}")
    for e in engines.values():
        e._check_open("serve a batcher")
    return dict(sorted(engines.items()))
