"""What every device offers: an array module, streams, events, copies, pinned buffers, an allocator."""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np


class Device:
    """A place where work runs. Subclasses: :class:`~perfkit.device.cpu.CpuDevice`, ``CudaDevice``."""

    kind: str = "?"
    index: int = 0
    #: whether arithmetic in this storage precision is faster than float32 on this device (the CPU's
    #: NumPy has no fast float16/bfloat16 arithmetic: it converts element by element). The builder
    #: still times both when allowed to pick (``BuilderConfig(tactics="time")``); without timing,
    #: these decide whether a layer takes the reduced precision.
    fast_fp16: bool = False
    fast_bf16: bool = False

    #: why this device cannot run layers stored in bfloat16, or None when it can (the CPU can: NumPy
    #: holds real two-byte bfloat16 arrays through ``ml_dtypes``)
    bf16_limitation: str | None = None

    @property
    def runs_bf16(self) -> bool:
        """Whether layers stored in real two-byte bfloat16 run on this device."""
        return self.bf16_limitation is None

    @property
    def xp(self) -> Any:  # the array module: numpy or cupy
        raise NotImplementedError

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def spec(self) -> str:
        return self.kind if self.kind == "cpu" else f"{self.kind}:{self.index}"

    def activate(self) -> Any:
        """A context manager under which this device's work runs: on CUDA it makes this GPU the calling
        thread's current device (kernels, allocations and library handles follow the current device),
        and restores the previous one on leaving; nothing on the CPU."""
        return contextlib.nullcontext()

    # streams and events ------------------------------------------------------------------
    def create_stream(self) -> Any:
        raise NotImplementedError

    def create_event(self) -> Any:
        raise NotImplementedError

    def synchronize(self) -> None:
        raise NotImplementedError

    @staticmethod
    def elapsed_ms(start: Any, end: Any) -> float:
        """Milliseconds between two recorded events (both must have been reached)."""
        return end.elapsed_ms_since(start)

    # memory ------------------------------------------------------------------------------
    @property
    def allocator(self) -> Any:
        raise NotImplementedError

    @property
    def tracking_allocator(self) -> Any:
        """The device's shared :class:`TrackingAllocator` (over its allocator): the default for builders,
        so every engine's and context's memory events are recorded."""
        tracker = getattr(self, "_tracker", None)
        if tracker is None:
            from .tracking import TrackingAllocator
            tracker = self._tracker = TrackingAllocator(self.allocator)
        return tracker

    def is_device_array(self, a: Any) -> bool:
        raise NotImplementedError

    def to_device(self, host: Any, stream: Any = None, out: Any = None) -> Any:
        raise NotImplementedError

    def to_host(self, a: Any, stream: Any = None, out: Any = None) -> np.ndarray:
        raise NotImplementedError

    def pinned_empty(self, shape: tuple, dtype: Any = np.float32) -> np.ndarray:
        """A host array suitable for fast asynchronous copies (page-locked on CUDA)."""
        return np.empty(shape, dtype)

    def info(self) -> dict:
        return {"device": self.spec, "device_name": self.name}

    def __repr__(self) -> str:
        return f"<perfkit.Device {self.spec} ({self.name})>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)
