"""The CPU device: NumPy arrays, and streams that are ordered asynchronous work queues.

A :class:`CpuStream` runs the work submitted to it in order, off the caller's thread; the caller
does not wait. Streams own no thread: a stream with work borrows a worker from a small shared pool
(:class:`_WorkerPool`) until its queue is empty, and workers that stay idle end after
``WORKER_IDLE_S`` seconds, so creating and dropping many streams leaves no threads behind.
A :class:`CpuEvent` records the ``perf_counter_ns`` time at which its stream reached it. As with
CUDA, every ``record`` starts a new *generation* of the event, and ``stream.wait_event(event)``
waits for the generation current when the wait was queued: recording the event again later never
makes an earlier wait block on the later mark. This gives the CPU the same asynchronous semantics
the guide describes for CUDA streams (enqueue, events, several streams in flight, synchronise to wait).
"""
from __future__ import annotations

import collections
import platform
import queue
import threading
import time
import weakref
from typing import Any, Callable

import numpy as np

from ..errors import AllocationError, ArgumentError, ExecutionError
from .base import Device
from .host import _BLAS, available_cores, default_threads, env_threads
from .memory import DEFAULT_ALIGNMENT, Buffer, host_array_spec, numeric_host_array

_host_bytes = None


def _host_memory_bytes() -> int:
    global _host_bytes
    if _host_bytes is None:
        from ..arguments import host_memory_bytes
        _host_bytes = host_memory_bytes() or 1 << 62
    return _host_bytes

WORKER_IDLE_S = 0.5


class CpuEvent:
    """Records when a stream reached it (``ts_ns``, a ``time.perf_counter_ns`` value).

    ``record(stream)`` starts generation ``generation + 1``, reached when the stream gets there.
    ``query()`` and ``synchronize()`` concern the latest generation, like ``cudaEventQuery`` and
    ``cudaEventSynchronize``; ``wait(generation)`` and ``when_reached(generation, fn)`` a given one.
    An event that was never recorded counts as reached (as on CUDA).
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._generation = 0                # generations handed out by record()/arm()
        self._pending: set = set()          # generations not yet reached
        self._callbacks: dict = {}          # generation -> [fn] run once it is reached
        self.ts_ns: int | None = None       # when the latest generation was reached

    @property
    def generation(self) -> int:
        """The latest generation (0 before the first record)."""
        return self._generation

    def arm(self) -> Callable[[], None]:
        """Starts a new generation, not reached yet, and returns the function that reaches it (calling
        it again does nothing). ``record(stream)`` is ``stream.submit(event.arm())``."""
        with self._cv:
            self._generation += 1
            g = self._generation
            self._pending.add(g)
            self.ts_ns = None
        return lambda: self._reach(g)

    def record(self, stream: "CpuStream | None" = None) -> None:
        reach = self.arm()
        if stream is None or stream.inline:
            reach()
            return
        try:
            stream.submit(reach)
        except BaseException:
            reach()                             # nothing will reach it: never leave a waiter hanging
            raise

    def _reach(self, generation: int) -> None:
        t = time.perf_counter_ns()
        with self._cv:
            if generation not in self._pending:
                return
            self._pending.discard(generation)
            if generation == self._generation:
                self.ts_ns = t
            callbacks = self._callbacks.pop(generation, ())
            self._cv.notify_all()
        for fn in callbacks:
            fn()

    def reached(self, generation: int | None = None) -> bool:
        with self._cv:
            return (self._generation if generation is None else generation) not in self._pending

    def query(self) -> bool:
        return self.reached()

    def wait(self, generation: int, timeout: float | None = None) -> bool:
        """Blocks until ``generation`` has been reached; False if ``timeout`` seconds passed first."""
        with self._cv:
            return self._cv.wait_for(lambda: generation not in self._pending, timeout)

    def when_reached(self, generation: int, fn: Callable[[], None]) -> None:
        """Calls ``fn`` once ``generation`` has been reached: now if it has, else on the thread that reaches it."""
        with self._cv:
            if generation in self._pending:
                self._callbacks.setdefault(generation, []).append(fn)
                return
        fn()

    def synchronize(self, timeout: float | None = None) -> None:
        if not self.wait(self._generation, timeout):
            raise ExecutionError(f"timed out after {timeout} s waiting for a CPU event; was its stream "
                                 "blocked, or its work never submitted?")

    def elapsed_ms_since(self, start: "CpuEvent") -> float:
        start.synchronize()
        self.synchronize()
        if start.ts_ns is None or self.ts_ns is None:
            raise ExecutionError("elapsed time between CPU events that were never recorded; call "
                                 "event.record(stream) on both first")
        return (self.ts_ns - start.ts_ns) / 1e6


class _Wait:
    """A queued ``wait_event``: the stream goes on once ``event`` reached ``generation``."""

    __slots__ = ("event", "generation")

    def __init__(self, event: CpuEvent, generation: int) -> None:
        self.event, self.generation = event, generation


class _WorkerPool:
    """Threads shared by every CPU stream. ``run(task)`` hands the task to an idle worker or starts a
    new one (so a task that blocks never starves another stream); a worker idle for ``idle_s``
    seconds ends."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0              # waiting workers no queued task has been promised to

    def run(self, task: Callable[[], None]) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1     # promised to one of the idle workers
        self._tasks.put(task)
        if spawn:
            threading.Thread(target=self._work, name="perfkit-cpu-worker", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                task = self._tasks.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:      # an unpromised waiter may leave: this one
                        self._idle -= 1
                        return
                continue                    # every waiter has a task on its way: take one
            try:
                task()
            finally:
                with self._lock:
                    self._idle += 1


_POOL = _WorkerPool(WORKER_IDLE_S)


class CpuStream:
    """An in-order queue of work, run off the caller's thread by a worker of the shared pool.

    ``submit(fn)`` returns at once; ``synchronize()`` waits until everything submitted has run
    and re-raises the first error a piece of work raised since the last synchronisation.
    ``wait_event(e)`` makes later work wait for the generation of ``e`` recorded last before the call.
    ``close()`` waits for the queued work and refuses further submissions (contexts close the streams
    they created; a stream holds no thread while it has no work, so an unclosed one costs nothing).
    ``inline=True`` gives a stream that runs work on the caller's thread (used by ``execute``).
    """

    def __init__(self, inline: bool = False, name: str = "") -> None:
        self.inline = inline
        self.name = name
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._work: collections.deque = collections.deque()
        self._pending = 0           # submitted and not finished
        self._active = False        # a worker drains the queue, or the queue waits on an event
        self._closed = False

    @property
    def id(self) -> int:
        return id(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, fn: Callable[[], Any]) -> None:
        if self._closed:
            raise ExecutionError(f"stream {self.name or hex(id(self))} was closed; create a new one with "
                                 "device.create_stream()")
        if self.inline:
            if type(fn) is _Wait:
                fn.event.wait(fn.generation)
            else:
                fn()
            return
        with self._lock:
            self._work.append(fn)
            self._pending += 1
            start = not self._active
            self._active = True
        if start:
            _POOL.run(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._work:
                    self._active = False
                    return
                fn = self._work.popleft()
            if type(fn) is _Wait:
                if not fn.event.reached(fn.generation):
                    # give the worker back; the event's reaching thread resumes this stream
                    fn.event.when_reached(fn.generation, self._resume)
                    return
                self._done_one()
                continue
            try:
                fn()
            except BaseException as exc:  # the first is kept for synchronize(); the stream goes on
                if self._error is None:
                    self._error = exc
            finally:
                self._done_one()

    def _resume(self) -> None:
        self._done_one()                # the wait itself
        _POOL.run(self._drain)

    def _done_one(self) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def wait_event(self, event: CpuEvent) -> None:
        """Work submitted after this call starts only once ``event`` has reached the generation it
        had when this call was made (a later ``record`` of the event does not move the wait)."""
        self.submit(_Wait(event, event.generation))

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

    def close(self) -> None:
        """Waits for the queued work, then refuses new work. Errors the work raised are re-raised."""
        if self._closed:
            return
        self._closed = True
        self.synchronize()

    def __enter__(self) -> "CpuStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"<CpuStream {self.name or hex(id(self))}{' (closed)' if self._closed else ''}>"


class CpuAllocator:
    """Aligned host memory from NumPy; ``free`` drops the reference."""

    def allocate(self, size: int, alignment: int = DEFAULT_ALIGNMENT, flags: int = 0) -> Buffer:
        if size + alignment > _host_memory_bytes():
            raise AllocationError(f"{size} bytes asked of the CPU allocator, more than this machine's "
                                  f"{_host_memory_bytes()} bytes of memory; ask for less (a smaller max_batch_size)")
        raw = np.empty(int(size) + alignment, dtype=np.uint8)
        start = (-raw.__array_interface__["data"][0]) % alignment
        return Buffer(raw[start:start + int(size)], "cpu")

    def free(self, buffer: Buffer) -> None:
        return None


class CpuDevice(Device):
    """NumPy on the host. ``threads``: the BLAS threads its computations use (default: the count set in
    the environment by OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, BLIS_NUM_THREADS or OMP_NUM_THREADS,
    else every core this process may run on less the cores other processes keep busy (a 0.1 s probe of
    /proc/stat by :func:`default_threads`, taken by :meth:`apply_threads` and reused for 10 s; at least
    one thread): a matrix product whose BLAS threads outnumber the free cores waits for whichever thread
    is descheduled, and times stably many times too long. An explicit count wins over both). BLAS pools
    are process-wide, so the setting is applied to the process when set, and re-applied by
    :meth:`apply_threads` (the timing functions call it before timing; rows record the count applied)."""

    kind = "cpu"
    index = 0

    def __init__(self, threads: int | None = None) -> None:
        self._allocator = CpuAllocator()
        self._streams = weakref.WeakSet()
        self._count = 0
        self._threads: int | None = None
        self._default: int | None = None    # default_threads() as last probed by apply_threads
        if threads is None:                  # no probe at start-up: the environment's count or every core,
            _BLAS.apply(self.threads)        # until a timing function sizes the threads to the free cores
        else:
            self.threads = threads

    @property
    def threads(self) -> int:
        """BLAS threads of this device's computations (set it to change them; None restores the default:
        the environment's count, else the available cores less those other processes keep busy, as
        probed by the last :meth:`apply_threads`)."""
        if self._threads is not None:
            return self._threads
        return env_threads() or min(self._default or available_cores(), available_cores())

    @threads.setter
    def threads(self, value: int | None) -> None:
        if value is not None:
            from ..arguments import positive_int
            value = positive_int(value, "CpuDevice.threads (BLAS threads; None for the environment's "
                                        "OMP_NUM_THREADS/OPENBLAS_NUM_THREADS, else one per available core)",
                                 maximum=4096)
        self._threads = value
        self.apply_threads()

    def blas_threads(self, streams: int = 1) -> int:
        """BLAS threads per stream when ``streams`` run at once, so that streams x BLAS threads stay
        within :attr:`threads` (at least one each)."""
        from ..arguments import positive_int
        return max(1, self.threads // positive_int(streams, "blas_threads: streams", maximum=4096))

    def apply_threads(self, streams: int = 1) -> int:
        """Sets the process's BLAS threads to :meth:`blas_threads` of ``streams`` (a no-op when already
        so) and returns that count: what the next computations run with."""
        if self._threads is None and env_threads() is None:
            self._default = default_threads()
        n = self.blas_threads(streams)
        _BLAS.apply(n)
        return n

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

    @staticmethod
    def elapsed_ms(start: Any, end: Any) -> float:
        """Milliseconds between two recorded CPU events (both must have been reached)."""
        for what, e in (("start", start), ("end", end)):
            if not isinstance(e, CpuEvent):
                raise ArgumentError(f"elapsed_ms: {what} must be an event of this device, not {type(e).__name__} "
                                    f"{e!r:.40}; make one with device.create_event() and record it on a stream")
        return end.elapsed_ms_since(start)

    def pinned_empty(self, shape: tuple, dtype: Any = np.float32) -> np.ndarray:
        """A host array for asynchronous copies (on the CPU, ordinary memory)."""
        shape, dtype = host_array_spec(shape, dtype, "pinned_empty")
        return np.empty(shape, dtype)

    def to_device(self, host: Any, stream: Any = None, out: Any = None) -> np.ndarray:
        """Copies into ``out`` (a new array if None); on an asynchronous stream the copy is queued there."""
        host = numeric_host_array(host, "to_device: host")
        _check_stream(stream, "to_device")
        if out is None:
            return host.copy()
        _check_out(out, host, "to_device")
        if stream is not None and not stream.inline:
            stream.submit(lambda: np.copyto(out, host, casting="same_kind"))
        else:
            np.copyto(out, host, casting="same_kind")
        return out

    def to_host(self, a: Any, stream: Any = None, out: Any = None) -> np.ndarray:
        a = numeric_host_array(a, "to_host: a")
        _check_stream(stream, "to_host")
        if out is None:
            if stream is not None and not stream.inline:
                stream.synchronize()
            return np.array(a, copy=True)
        _check_out(out, a, "to_host")
        if stream is not None and not stream.inline:
            stream.submit(lambda: np.copyto(out, a, casting="same_kind"))
        else:
            np.copyto(out, a, casting="same_kind")
        return out

    def info(self) -> dict:
        import os
        return {"device": "cpu", "device_name": self.name, "cpu_count": os.cpu_count() or 1,
                "threads": self.threads, "numpy": np.__version__}


def _check_stream(stream: Any, who: str) -> None:
    if stream is not None and not isinstance(stream, CpuStream):
        raise ArgumentError(f"{who}: stream must be a stream of the CPU device or None, not "
                            f"{type(stream).__name__} {stream!r:.40}; make one with device.create_stream()")


def _check_out(out: Any, src: np.ndarray, who: str) -> None:
    if not isinstance(out, np.ndarray):
        raise ArgumentError(f"{who}: out must be a NumPy array or None, not {type(out).__name__} {out!r:.40}")
    if out.shape != src.shape or not np.can_cast(src.dtype, out.dtype, "same_kind") or not out.flags.writeable:
        raise ArgumentError(f"{who}: out is {out.shape} {out.dtype}{'' if out.flags.writeable else ' (read-only)'} "
                            f"but the data is {src.shape} {src.dtype}; pass a writable out of the same shape and a "
                            "compatible dtype, or out=None for a new array")
