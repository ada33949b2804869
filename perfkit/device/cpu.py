"""The CPU device: NumPy arrays, and streams that are ordered asynchronous work queues.

A :class:`CpuStream` runs the work submitted to it in order on its own worker thread; the caller
does not wait. A :class:`CpuEvent` records the ``perf_counter_ns`` time at which its stream reached
it. This gives the CPU the same asynchronous semantics the guide describes for CUDA streams
(enqueue, events, several streams in flight, synchronise to wait).
"""
from __future__ import annotations

import platform
import queue
import threading
import time
import weakref
from typing import Any, Callable

import numpy as np

from ..errors import ExecutionError
from .base import Device
from .memory import DEFAULT_ALIGNMENT, Buffer


class CpuEvent:
    """Records when a stream reached it (``ts_ns``, a ``time.perf_counter_ns`` value)."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.ts_ns: int | None = None

    def record(self, stream: "CpuStream | None" = None) -> None:
        self._done.clear()
        self.ts_ns = None
        if stream is None or stream.inline:
            self._mark()
        else:
            stream.submit(self._mark)

    def _arm(self) -> None:
        """Marks the event as not reached; the work that reaches it will call ``_mark``."""
        self._done.clear()
        self.ts_ns = None

    def _mark(self) -> None:
        self.ts_ns = time.perf_counter_ns()
        self._done.set()

    def query(self) -> bool:
        return self._done.is_set()

    def synchronize(self, timeout: float | None = None) -> None:
        if not self._done.wait(timeout):
            raise ExecutionError("timed out waiting for a CPU event; was it recorded on a stream?")

    def elapsed_ms_since(self, start: "CpuEvent") -> float:
        start.synchronize()
        self.synchronize()
        return (self.ts_ns - start.ts_ns) / 1e6


class CpuStream:
    """An in-order queue of work run by one worker thread.

    ``submit(fn)`` returns at once; ``synchronize()`` waits until everything submitted has run
    and re-raises the first error a piece of work raised since the last synchronisation.
    ``inline=True`` gives a stream that runs work on the caller's thread (used by ``execute``).
    """

    def __init__(self, inline: bool = False, name: str = "") -> None:
        self.inline = inline
        self.name = name
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def id(self) -> int:
        return id(self)

    def _ensure_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"perfkit-cpu-stream-{self.name or id(self)}",
                                            daemon=True)
            self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> None:
        if self.inline:
            fn()
            return
        with self._lock:
            self._pending += 1
            self._ensure_worker()
        self._queue.put(fn)

    def _run(self) -> None:
        while True:
            try:
                fn = self._queue.get(timeout=2.0)
            except queue.Empty:          # idle: let the thread end; submit() starts a new one
                with self._lock:
                    if self._pending == 0:
                        self._thread = None
                        return
                continue
            try:
                fn()
            except BaseException as exc:  # the first is kept for synchronize(); the worker survives
                if self._error is None:
                    self._error = exc
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def wait_event(self, event: CpuEvent) -> None:
        """Work submitted after this call starts only once ``event`` has been reached."""
        self.submit(event.synchronize)

    def query(self) -> bool:
        with self._lock:
            return self._pending == 0

    def synchronize(self) -> None:
        with self._lock:
            while self._pending:
                self._idle.wait()
            error, self._error = self._error, None
        if error is not None:
            raise error

    def __enter__(self) -> "CpuStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"<CpuStream {self.name or hex(id(self))}>"


class CpuAllocator:
    """Aligned host memory from NumPy; ``free`` drops the reference."""

    def allocate(self, size: int, alignment: int = DEFAULT_ALIGNMENT, flags: int = 0) -> Buffer:
        raw = np.empty(int(size) + alignment, dtype=np.uint8)
        start = (-raw.__array_interface__["data"][0]) % alignment
        return Buffer(raw[start:start + int(size)], "cpu")

    def free(self, buffer: Buffer) -> None:
        return None


class CpuDevice(Device):
    kind = "cpu"
    index = 0

    def __init__(self) -> None:
        self._allocator = CpuAllocator()
        self._streams = weakref.WeakSet()
        self._count = 0

    @property
    def xp(self) -> Any:
        return np

    @property
    def name(self) -> str:
        return platform.processor() or platform.machine() or "cpu"

    def create_stream(self) -> CpuStream:
        self._count += 1
        s = CpuStream(name=f"cpu-stream-{self._count}")
        self._streams.add(s)
        return s

    def create_event(self) -> CpuEvent:
        return CpuEvent()

    def synchronize(self) -> None:
        for s in list(self._streams):
            s.synchronize()

    @property
    def allocator(self) -> CpuAllocator:
        return self._allocator

    def is_device_array(self, a: Any) -> bool:
        return isinstance(a, np.ndarray)

    def to_device(self, host: Any, stream: Any = None, out: Any = None) -> np.ndarray:
        """Copies into ``out`` (a new array if None); on an asynchronous stream the copy is queued there."""
        host = np.asarray(host)
        if out is None:
            return host.copy()
        if stream is not None and not stream.inline:
            stream.submit(lambda: np.copyto(out, host, casting="same_kind"))
        else:
            np.copyto(out, host, casting="same_kind")
        return out

    def to_host(self, a: Any, stream: Any = None, out: Any = None) -> np.ndarray:
        if out is None:
            if stream is not None and not stream.inline:
                stream.synchronize()
            return np.array(a, copy=True)
        if stream is not None and not stream.inline:
            stream.submit(lambda: np.copyto(out, a))
        else:
            np.copyto(out, a)
        return out

    def info(self) -> dict:
        import os
        return {"device": "cpu", "device_name": self.name, "cpu_count": os.cpu_count() or 1,
                "numpy": np.__version__}
