"""Where work runs: :func:`get_device` returns a CPU (NumPy) or CUDA (CuPy) device."""
from __future__ import annotations

import re
import threading
from typing import Any

from ..errors import DeviceError
from .base import Device
from .cpu import CpuDevice, CpuEvent, CpuStream
from .host import (CpuSnapshot, available_cores, cpu_snapshot, default_threads, host_load, other_busy_cores,
                   other_busy_cores_over, probe_other_busy_cores)
from .memory import (Allocator, Buffer, CountingAllocator, allocation_scope, current_scope)
from .tracking import CupyAllocationHook, TrackingAllocator

__all__ = ["Device", "get_device", "cuda_available", "Buffer", "Allocator", "CountingAllocator",
           "CpuDevice", "CpuStream", "CpuEvent", "allocation_scope", "current_scope", "TrackingAllocator",
           "CupyAllocationHook", "host_load", "available_cores", "CpuSnapshot", "cpu_snapshot",
           "other_busy_cores", "other_busy_cores_over", "probe_other_busy_cores", "default_threads"]

_cache: dict[str, Device] = {}
_lock = threading.Lock()


def cuda_available() -> bool:
    from .cuda import cuda_device_count
    return cuda_device_count() > 0


def get_device(spec: Any = None, threads: int | None = None) -> Device:
    """Returns the device named by ``spec``.

    ``"cpu"``, ``"cuda"`` (GPU 0), ``"cuda:N"``, or ``None``/``"auto"``: CUDA when CuPy finds a
    GPU, else the CPU, silently. A :class:`Device` is returned unchanged. Devices are shared:
    asking twice for the same spec gives the same object.

    ``threads`` (CPU only): the BLAS threads the CPU device computes with, from now on (the device is
    shared and BLAS pools are process-wide); None keeps its setting, by default the count set by
    OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, BLIS_NUM_THREADS or OMP_NUM_THREADS when one is, else one per
    core this process may run on. Streams running at once share them (``device.blas_threads(streams)``).
    """
    dev = _get_device(spec)
    if threads is not None:
        if dev.kind != "cpu":
            raise DeviceError(f"get_device: threads= sets the CPU's BLAS threads; {dev.spec} has none. "
                              "Leave threads=None for a GPU")
        dev.threads = threads
    return dev


def _get_device(spec: Any) -> Device:
    if isinstance(spec, Device):
        return spec
    if spec is None:
        spec = "auto"
    if not isinstance(spec, str):
        raise DeviceError(f"device must be a string like 'cpu', 'cuda' or 'cuda:0', not {spec!r}")
    key = spec.strip().lower()
    if key == "auto":
        key = "cuda:0" if cuda_available() else "cpu"
    if key == "cuda":
        key = "cuda:0"
    m = re.fullmatch(r"(cpu|cuda:(\d+))", key)
    if not m:
        raise DeviceError(f"unknown device {spec!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    with _lock:
        if key not in _cache:
            if key == "cpu":
                _cache[key] = CpuDevice()
            else:
                from .cuda import CudaDevice
                _cache[key] = CudaDevice(int(m.group(2)))
        return _cache[key]
