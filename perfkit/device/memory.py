"""Buffers and the allocator protocol (TensorRT's IGpuAllocator, in Python).

An allocator is any object with ``allocate(size, alignment=256, flags=0) -> Buffer`` and
``free(buffer)``. perfkit takes every byte an engine or context uses through such an object, and
says *why* it asks through :func:`allocation_scope` (a tag such as ``"weights"`` and an owner such
as ``"engine:mnist"``), which a tracking allocator can read with :func:`current_scope` without the
protocol having to grow extra arguments.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np

from ..errors import AllocationError

DEFAULT_ALIGNMENT = 256
TAGS = ("weights", "activations", "workspace", "io", "user")


@runtime_checkable
class Allocator(Protocol):
    def allocate(self, size: int, alignment: int = DEFAULT_ALIGNMENT, flags: int = 0) -> Any: ...

    def free(self, buffer: Any) -> None: ...


class Buffer:
    """A block of device (or host) memory: ``array`` is a 1-D uint8 array of the device's module.

    ``view(offset, shape, dtype)`` returns a typed array over part of the block without copying.
    """

    __slots__ = ("array", "nbytes", "ptr", "device_kind", "__weakref__")

    def __init__(self, array: Any, device_kind: str):
        self.array = array
        self.nbytes = int(array.nbytes)
        self.device_kind = device_kind
        if device_kind == "cpu":
            self.ptr = int(array.__array_interface__["data"][0])
        else:
            self.ptr = int(array.data.ptr)

    def view(self, offset: int, shape: tuple, dtype: Any) -> Any:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
        end = offset + count * dtype.itemsize
        if offset < 0 or end > self.nbytes:
            raise AllocationError(
                f"view [{offset}, {end}) is outside a buffer of {self.nbytes} bytes; "
                "the memory plan and the buffer disagree (a bug in perfkit, please report it)")
        return self.array[offset:end].view(dtype).reshape(shape)

    def __repr__(self) -> str:
        return f"Buffer({self.device_kind}, {self.nbytes} bytes at 0x{self.ptr:x})"


def align(n: int, alignment: int = DEFAULT_ALIGNMENT) -> int:
    return (int(n) + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class Scope:
    tag: str = "user"
    owner: str = ""


class _ScopeLocal(threading.local):
    value = None          # class defaults: lookups never miss (a miss on threading.local is slow)
    layer = ""


_scope = _ScopeLocal()
_DEFAULT_SCOPE = Scope()


def set_current_layer(name: str) -> None:
    """Execution contexts name the layer they are running on this thread (for allocation events)."""
    _scope.layer = name


def current_layer() -> str:
    return _scope.layer


def current_scope() -> Scope:
    """The tag and owner of the allocation perfkit is making on this thread (``user`` otherwise)."""
    return _scope.value or _DEFAULT_SCOPE


@contextlib.contextmanager
def allocation_scope(tag: str, owner: str = "") -> Iterator[None]:
    previous = _scope.value
    _scope.value = Scope(tag, owner)
    try:
        yield
    finally:
        _scope.value = previous


def as_buffer(obj: Any, device_kind: str) -> Buffer:
    """Accepts what an allocator returned: a :class:`Buffer`, or a 1-D uint8 array of the device."""
    if isinstance(obj, Buffer):
        return obj
    arr = getattr(obj, "array", obj)
    if getattr(arr, "dtype", None) == np.uint8 and getattr(arr, "ndim", 0) == 1:
        return Buffer(arr, device_kind)
    raise AllocationError(
        f"an allocator returned {type(obj).__name__}; allocate() must return a perfkit.Buffer "
        "or a 1-D uint8 array of the device (wrap your memory with perfkit.Buffer(array, kind))")


def allocate(allocator: Any, size: int, tag: str, owner: str, device_kind: str) -> Buffer:
    """Takes ``size`` bytes from ``allocator`` on behalf of ``owner``, tagged ``tag``."""
    size = max(int(size), 1)
    with allocation_scope(tag, owner):
        try:
            raw = allocator.allocate(size, DEFAULT_ALIGNMENT, 0)
        except AllocationError:
            raise
        except MemoryError as exc:
            raise AllocationError(
                f"{owner or 'perfkit'} could not allocate {size} bytes of {tag} memory: {exc}; "
                "free other engines or contexts, or build with a smaller max_batch_size") from exc
    if raw is None:
        raise AllocationError(
            f"the allocator returned None for {size} bytes of {tag} memory for {owner}: "
            "out of memory")
    buf = as_buffer(raw, device_kind)
    if buf.nbytes < size:
        raise AllocationError(f"the allocator returned {buf.nbytes} bytes when {size} were asked for")
    return buf


class CountingAllocator:
    """Wraps an allocator and keeps, per tag, the bytes currently held and the peak total.

    A small, dependency-free accountant; the profiling package offers a full event recorder.
    """

    def __init__(self, base: Any):
        self.base = base
        self._lock = threading.Lock()
        self._live: dict[int, tuple[int, str]] = {}
        self.in_use_bytes = 0
        self.peak_bytes = 0
        self.by_tag: dict[str, int] = {}

    def allocate(self, size: int, alignment: int = DEFAULT_ALIGNMENT, flags: int = 0) -> Any:
        raw = self.base.allocate(size, alignment, flags)
        buf_bytes = int(getattr(raw, "nbytes", size))
        tag = current_scope().tag
        with self._lock:
            self._live[id(raw)] = (buf_bytes, tag)
            self.in_use_bytes += buf_bytes
            self.by_tag[tag] = self.by_tag.get(tag, 0) + buf_bytes
            self.peak_bytes = max(self.peak_bytes, self.in_use_bytes)
        return raw

    def free(self, buffer: Any) -> None:
        with self._lock:
            size, tag = self._live.pop(id(buffer), (0, "user"))
            self.in_use_bytes -= size
            self.by_tag[tag] = self.by_tag.get(tag, 0) - size
        self.base.free(buffer)
