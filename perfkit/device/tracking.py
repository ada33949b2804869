"""TrackingAllocator (guide 1.6): an allocator that keeps a timestamped list of allocation events.

It wraps another allocator (the device's by default) and records, for every ``allocate`` and
``free``, the time, size, the purpose perfkit declared (tag and owner, see
:func:`perfkit.device.allocation_scope`), the engine layer running on the thread, and the running
total and peak. A failed allocation is recorded as ``oom`` and raised as an :class:`AllocationError`
that says how much was asked for, held and free.
"""
from __future__ import annotations

import threading
import time
from threading import get_ident
from time import perf_counter_ns
from typing import Any

import pandas as pd

from .memory import DEFAULT_ALIGNMENT, current_layer, current_scope
from ..errors import AllocationError
from ..frames.schemas import MEMORY_EVENTS


class TrackingAllocator:
    """``TrackingAllocator(base=None, device=None, max_events=1_000_000)``.

    ``events`` is the ``memory_events`` frame; ``in_use_bytes``/``peak_bytes`` the running figures;
    ``live()`` the blocks held now by tag and owner; ``mark()`` returns an event index to slice from.
    """

    def __init__(self, base: Any = None, device: Any = None, max_events: int = 1_000_000):
        if base is None:
            from . import get_device
            base = get_device(device).allocator
        self.base = base
        self.max_events = int(max_events)
        self._lock = threading.Lock()
        self._live: dict = {}            # id(buffer) -> (ptr, size, tag, owner)
        self._rows: list = []
        self.dropped_events = 0
        self._thread_names: dict = {}
        self.in_use_bytes = 0
        self.peak_bytes = 0

    # the allocator protocol ----------------------------------------------------------------------
    def allocate(self, size: int, alignment: int = DEFAULT_ALIGNMENT, flags: int = 0) -> Any:
        scope = current_scope()
        try:
            buf = self.base.allocate(size, alignment, flags)
            if buf is None:
                raise MemoryError("the allocator returned None")
        except (MemoryError, AllocationError) as exc:
            self._record("oom", 0, 0, size, scope.tag, scope.owner)
            free = self._free_device_bytes()
            raise AllocationError(
                f"out of memory: {scope.owner or 'a user'} asked for {size} bytes of {scope.tag} memory with "
                f"{self.in_use_bytes} bytes held through this allocator"
                + (f" and {free} bytes free on the device" if free is not None else "")
                + f" ({exc}); free engines or contexts, or lower max_batch_size") from exc
        try:
            nbytes, ptr = buf.nbytes, buf.ptr
        except AttributeError:           # a user allocator returning a bare array
            nbytes, ptr = int(getattr(buf, "nbytes", size)), 0
        tag, owner = scope.tag, scope.owner
        with self._lock:
            self._live[id(buf)] = (ptr, nbytes, tag, owner)
            in_use = self.in_use_bytes = self.in_use_bytes + nbytes
            if in_use > self.peak_bytes:
                self.peak_bytes = in_use
            self._append("alloc", ptr, nbytes, size, tag, owner)
        return buf

    def free(self, buffer: Any) -> None:
        with self._lock:
            info = self._live.pop(id(buffer), None)
            if info is not None:
                ptr, nbytes, tag, owner = info
                self.in_use_bytes -= nbytes
                self._append("free", ptr, nbytes, nbytes, tag, owner)
        self.base.free(buffer)

    # observing other allocations (CuPy's hook uses this) -------------------------------------------
    def record_external(self, action: str, ptr: int, size: int, tag: str = "user", owner: str = "") -> None:
        with self._lock:
            if action == "alloc":
                self._live[("ext", ptr)] = (ptr, size, tag, owner)
                self.in_use_bytes += size
                self.peak_bytes = max(self.peak_bytes, self.in_use_bytes)
            else:
                info = self._live.pop(("ext", ptr), None)
                if info is None:
                    return
                self.in_use_bytes -= info[1]
                size, tag, owner = info[1], info[2], info[3]
            self._append(action, ptr, size, size, tag, owner)

    # views -----------------------------------------------------------------------------------------
    def mark(self) -> int:
        with self._lock:
            return len(self._rows)

    def events_since(self, mark: int = 0) -> pd.DataFrame:
        with self._lock:
            rows = self._rows[mark:]
        names = MEMORY_EVENTS.names
        return MEMORY_EVENTS.frame([dict(zip(names, r)) for r in rows],
                                   {"peak_bytes": self.peak_bytes, "dropped_events": self.dropped_events})

    @property
    def events(self) -> pd.DataFrame:
        return self.events_since(0)

    def live(self) -> pd.DataFrame:
        """Blocks held now: one row per (tag, owner) with their count and bytes."""
        with self._lock:
            rows = list(self._live.values())
        df = pd.DataFrame(rows, columns=["ptr", "size_bytes", "tag", "owner"])
        return (df.groupby(["tag", "owner"], as_index=False).agg(blocks=("ptr", "count"), bytes=("size_bytes", "sum"))
                .sort_values("bytes", ascending=False).reset_index(drop=True))

    def reset_peak(self) -> None:
        with self._lock:
            self.peak_bytes = self.in_use_bytes

    # internals -------------------------------------------------------------------------------------
    def _append(self, action, ptr, size, requested, tag, owner) -> None:
        if len(self._rows) >= self.max_events:
            self.dropped_events += 1
            return
        # a tuple in MEMORY_EVENTS column order; the frame is built only when asked for
        ident = get_ident()
        name = self._thread_names.get(ident)
        if name is None:
            name = self._thread_names[ident] = threading.current_thread().name
        self._rows.append((perf_counter_ns(), action, ptr, size, requested, tag, owner, current_layer(), name,
                           self.in_use_bytes, self.peak_bytes))

    def _record(self, action, ptr, size, requested, tag, owner) -> None:
        with self._lock:
            self._append(action, ptr, size, requested, tag, owner)

    def _free_device_bytes(self):
        try:
            import cupy
            return int(cupy.cuda.runtime.memGetInfo()[0]) if self._is_cuda() else None
        except Exception:
            return None

    def _is_cuda(self) -> bool:
        return type(self.base).__name__.lower().startswith("cuda")


class _Release:
    """Owner of a pooled CuPy block handed out through the hook: when CuPy drops it, the free is recorded."""

    __slots__ = ("mem", "tracker", "ptr")

    def __init__(self, mem, tracker, ptr):
        self.mem, self.tracker, self.ptr = mem, tracker, ptr

    def __del__(self):
        self.tracker.record_external("free", self.ptr, 0)


class CupyAllocationHook:
    """While active, routes every CuPy allocation in the process through ``tracker`` as ``user``.

    Installed with ``cupy.cuda.set_allocator``; each block still comes from CuPy's memory pool and
    goes back to it when CuPy releases it, at which point the free is recorded. perfkit's own
    device buffers come from the pool directly and are not seen twice.
    """

    def __init__(self, tracker: TrackingAllocator):
        self.tracker = tracker
        self._previous = None

    def __enter__(self) -> "CupyAllocationHook":
        import cupy
        pool = cupy.get_default_memory_pool()
        tracker = self.tracker
        mod = cupy.cuda.memory

        def malloc(size: int):
            mem = pool.malloc(size)
            ptr = int(mem.ptr)
            tracker.record_external("alloc", ptr, int(size), "user", "")
            owner = _Release(mem, tracker, ptr)
            return mod.MemoryPointer(mod.UnownedMemory(ptr, int(size), owner), 0)
        self._previous = cupy.cuda.get_allocator()
        cupy.cuda.set_allocator(malloc)
        return self

    def __exit__(self, *exc: Any) -> None:
        import cupy
        cupy.cuda.set_allocator(self._previous)
