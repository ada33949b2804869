"""GPU timestamps for profiled CUDA graphs: a one-thread kernel that writes the GPU's globaltimer.

CUDA events cannot be read from inside a graph without an event-record node (about 3.5 us of GPU
time per boundary on an H200); a *stamp* kernel writes ``%globaltimer`` (nanoseconds, 32 ns steps on
an H200) into slot i of a uint64 array, in device memory or in page-locked host memory that the GPU
writes directly. ``globaltimer_offset`` places those values on the ``perf_counter_ns`` timeline.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

_STAMP_SRC = r"""
extern "C" __global__ void perfkit_stamp(unsigned long long* out, int i) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    out[i] = t;
}
"""
_kernels: dict = {}


def _stamp_kernel() -> Any:
    k = _kernels.get("stamp")
    if k is None:
        import cupy
        k = cupy.RawKernel(_STAMP_SRC, "perfkit_stamp")
        k.compile()                             # before any capture: no module loading while capturing
        _kernels["stamp"] = k
    return k


def stamper(ptr: int) -> Any:
    """mark(i): a one-thread kernel on the current stream writes the GPU's globaltimer (ns) into
    slot i of the uint64 array at ``ptr`` (device memory, or page-locked host memory)."""
    kernel, ptr = _stamp_kernel(), np.uint64(ptr)

    def mark(i: int) -> None:
        kernel((1,), (1,), (ptr, np.int32(i)))
    return mark


def globaltimer_offset(device: Any, trials: int = 20) -> int:
    """perf_counter_ns - globaltimer, from the tightest of ``trials`` host-bracketed stamps."""
    buf = device.pinned_empty((1,), np.uint64)
    mark = stamper(buf.ctypes.data)
    stream = device.create_stream()
    best = None
    for _ in range(trials):
        with stream:
            h0 = time.perf_counter_ns()
            mark(0)
            stream.synchronize()
            h1 = time.perf_counter_ns()
        if best is None or h1 - h0 < best[0]:
            best = (h1 - h0, (h0 + h1) // 2 - int(buf[0]))
    return best[1]
