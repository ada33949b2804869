"""TrackingAllocator (guide 1.6): an allocator that keeps a timestamped list of allocation events.

It wraps another allocator (the device's by default) and records, for every ``allocate`` and
``free``, the time, size, the purpose perfkit declared (tag and owner, see
:func:`perfkit.device.allocation_scope`), the engine layer running on the thread, and the running
total and peak. A failed allocation is recorded as ``oom`` and raised as an :class:`AllocationError`
that says how much was asked for, held and free.
"""
from __future__ import annotations

import threading
from threading import get_ident
from time import perf_counter_ns
from typing import Any

import numpy as np
import pandas as pd

from .memory import (DEFAULT_ALIGNMENT, check_allocator, check_request, current_layer, current_scope, handle,
                     not_ours)
from ..errors import AllocationError, ArgumentError
from ..frames.schemas import MEMORY_EVENTS


class TrackingAllocator:
    """``TrackingAllocator(base=None, device=None, max_events=1_000_000)``.

    ``events`` is the ``memory_events`` frame; ``in_use_bytes``/``peak_bytes`` the running figures;
    ``live()`` the blocks held now by tag and owner; ``mark()`` returns an event index to slice from.

    Recording takes no lock: each event is one tuple appended to a list and one dict update, both
    atomic in CPython, and the running totals of the frame are computed when the frame is built.
    """

    def __init__(self, base: Any = None, device: Any = None, max_events: int = 1_000_000):
        from ..arguments import positive_int
        self.max_events = positive_int(max_events, "TrackingAllocator: max_events")
        if base is None:
            from . import get_device
            base = get_device(device).allocator
        elif device is not None:
            raise ArgumentError("TrackingAllocator: give base or device, not both; the device's allocator is "
                                "device.allocator")
        self.base = check_allocator(base, "TrackingAllocator")
        self._live: dict = {}            # id(buffer) -> (ptr, size, tag, owner, handle), ("ext", ptr) -> 4 of them
        self._rows: list = []            # (ts_ns, action, ptr, signed size, requested, tag, owner, layer, thread)
        self._thread_names: dict = {}
        self.dropped_events = 0
        self._floor = (0, 0)             # (row index, in-use bytes) from which the peak is measured

    # the allocator protocol ----------------------------------------------------------------------
    def allocate(self, size: int, alignment: int = DEFAULT_ALIGNMENT, flags: int = 0) -> Any:
        check_request(size, alignment, flags, "TrackingAllocator.allocate")
        scope = current_scope()
        try:
            buf = self.base.allocate(size, alignment, flags)
            if buf is None:
                raise MemoryError("the allocator returned None")
        except (MemoryError, AllocationError) as exc:
            self._append("oom", 0, 0, size, scope.tag, scope.owner)
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
        self._live[id(buf)] = (ptr, nbytes, tag, owner, handle(buf))
        rows = self._rows
        if len(rows) < self.max_events:      # the hot path of _append, inlined
            name = self._thread_names.get(get_ident()) or self._thread_name()
            rows.append((perf_counter_ns(), "alloc", ptr, nbytes, size, tag, owner, current_layer(), name))
        else:
            self.dropped_events += 1
        return buf

    def free(self, buffer: Any) -> None:
        info = self._live.pop(id(buffer), None)
        if info is None or info[4]() is not buffer:
            if info is not None:        # another object that took the id of a block dropped unfreed
                self._live[id(buffer)] = info
            raise not_ours(buffer, "TrackingAllocator.free")
        self._append("free", info[0], -info[1], info[1], info[2], info[3])
        self.base.free(buffer)

    # observing other allocations (CuPy's hook uses this) -------------------------------------------
    def record_external(self, action: str, ptr: int, size: int, tag: str = "user", owner: str = "") -> None:
        """Records memory taken (``action="alloc"``) or given back (``"free"``) outside this allocator:
        ``ptr`` its address, ``size`` its bytes (a free takes the size recorded at its alloc)."""
        if type(ptr) is not int or type(size) is not int or size < 0 or type(tag) is not str \
                or type(owner) is not str or action not in ("alloc", "free"):
            self._refuse_external(action, ptr, size, tag, owner)
        if action == "alloc":
            self._live[("ext", ptr)] = (ptr, size, tag, owner)
            self._append("alloc", ptr, size, size, tag, owner)
        else:
            info = self._live.pop(("ext", ptr), None)
            if info is not None:
                self._append("free", ptr, -info[1], info[1], info[2], info[3])

    # figures ---------------------------------------------------------------------------------------
    @property
    def in_use_bytes(self) -> int:
        return int(sum(v[1] for v in list(self._live.values())))

    @property
    def peak_bytes(self) -> int:
        index, base = self._floor
        sizes = [r[3] for r in self._rows]
        running = np.cumsum(np.asarray(sizes, dtype=np.int64)) if sizes else np.zeros(0, np.int64)
        after = running[index:] if index < len(running) else running[:0]
        at_floor = int(running[index - 1]) if index else 0
        return int(max(base, (after.max() - at_floor + base) if after.size else base, self.in_use_bytes))

    def reset_peak(self) -> None:
        self._floor = (len(self._rows), self.in_use_bytes)

    # views -----------------------------------------------------------------------------------------
    def mark(self) -> int:
        return len(self._rows)

    def events_since(self, mark: int = 0) -> pd.DataFrame:
        """The events recorded since ``mark`` (a value :meth:`mark` returned; 0 for all of them)."""
        from ..arguments import integer
        mark = integer(mark, "TrackingAllocator.events_since: mark (a value of mark())", minimum=0)
        rows = list(self._rows)
        sizes = np.asarray([r[3] for r in rows], dtype=np.int64)
        in_use = np.cumsum(sizes) if len(rows) else sizes
        peak = np.maximum.accumulate(in_use) if len(rows) else in_use
        out = [{"ts_ns": r[0], "action": r[1], "ptr": r[2], "size_bytes": abs(r[3]), "requested_bytes": r[4],
                "tag": r[5], "owner": r[6], "layer": r[7], "thread": r[8], "in_use_bytes": int(in_use[i]),
                "peak_bytes": int(peak[i])} for i, r in enumerate(rows) if i >= mark]
        return MEMORY_EVENTS.frame(out, {"peak_bytes": int(peak[-1]) if len(rows) else 0,
                                         "dropped_events": self.dropped_events})

    @property
    def events(self) -> pd.DataFrame:
        return self.events_since(0)

    def live(self) -> pd.DataFrame:
        """Blocks held now: one row per (tag, owner) with their count and bytes."""
        rows = [v[:4] for v in list(self._live.values())]
        df = pd.DataFrame(rows, columns=["ptr", "size_bytes", "tag", "owner"])
        return (df.groupby(["tag", "owner"], as_index=False).agg(blocks=("ptr", "count"), bytes=("size_bytes", "sum"))
                .sort_values("bytes", ascending=False).reset_index(drop=True))

    # internals -------------------------------------------------------------------------------------
    @staticmethod
    def _refuse_external(action, ptr, size, tag, owner) -> None:
        from ..arguments import integer, one_of
        one_of(action, ("alloc", "free"), "TrackingAllocator.record_external: action")
        integer(ptr, "TrackingAllocator.record_external: ptr (the block's address)")
        integer(size, "TrackingAllocator.record_external: size (bytes)", minimum=0)
        for what, value in (("tag", tag), ("owner", owner)):
            if not isinstance(value, str):
                raise ArgumentError(f"TrackingAllocator.record_external: {what} must be a str, not "
                                    f"{type(value).__name__} {value!r}")

    def _append(self, action, ptr, signed_size, requested, tag, owner) -> None:
        if len(self._rows) >= self.max_events:
            self.dropped_events += 1
            return
        name = self._thread_names.get(get_ident()) or self._thread_name()
        self._rows.append((perf_counter_ns(), action, ptr, signed_size, requested, tag, owner, current_layer(), name))

    def _thread_name(self) -> str:
        name = self._thread_names[get_ident()] = threading.current_thread().name
        return name

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
