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
import weakref
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np

from ..errors import AllocationError, ArgumentError

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
        if device_kind == "cpu":
            if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 1:
                raise ArgumentError(_not_bytes(array, "a NumPy array: numpy.empty(n, numpy.uint8)"))
            self.ptr = int(array.__array_interface__["data"][0])
        elif device_kind == "cuda":
            if getattr(array, "dtype", None) != np.uint8 or getattr(array, "ndim", 0) != 1 \
                    or not hasattr(getattr(array, "data", None), "ptr"):
                raise ArgumentError(_not_bytes(array, "a CuPy array: cupy.empty(n, cupy.uint8)"))
            self.ptr = int(array.data.ptr)
        else:
            raise ArgumentError(f"Buffer: device_kind must be 'cpu' or 'cuda', not {device_kind!r}; pass the "
                                "kind of the device the array lives on (device.kind)")
        self.array = array
        self.nbytes = int(array.nbytes)
        self.device_kind = device_kind

    def view(self, offset: int, shape: tuple, dtype: Any) -> Any:
        """A typed array of ``shape`` and ``dtype`` over the bytes from ``offset``, without copying.
        ``offset`` must be a multiple of the dtype's size and the view must lie inside the buffer."""
        from ..arguments import integer
        offset = integer(offset, "Buffer.view: offset", minimum=0)
        if not isinstance(shape, (tuple, list)) or not shape:
            raise ArgumentError(f"Buffer.view: shape must be a non-empty tuple of positive ints, not {shape!r}")
        shape = tuple(integer(d, f"Buffer.view: dimension {i} of shape {shape!r}", minimum=1)
                      for i, d in enumerate(shape))
        dt = numeric_dtype(dtype, "Buffer.view")
        if offset % dt.itemsize:
            raise ArgumentError(f"Buffer.view: offset {offset} is not a multiple of the {dt.itemsize}-byte size of "
                                f"{dt}; align the offset to the element size")
        end = offset + int(np.prod(shape, dtype=object)) * dt.itemsize
        if end > self.nbytes:
            raise ArgumentError(f"Buffer.view: bytes [{offset}, {end}) do not fit in a buffer of {self.nbytes} "
                                "bytes; ask for a smaller shape or offset, or allocate a larger buffer")
        return self._view(offset, shape, dt)

    def _view(self, offset: int, shape: tuple, dtype: Any) -> Any:
        """``view`` for perfkit's own memory plans (already validated): only the range is checked."""
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


def _not_bytes(array: Any, example: str) -> str:
    what = type(array).__name__
    if hasattr(array, "dtype") and hasattr(array, "ndim"):
        what += f" of {array.dtype} with {array.ndim} dimension(s)"
    return f"Buffer: array must be a 1-D uint8 array of the device, not {what}; pass {example}"


def check_request(size: Any, alignment: Any, flags: Any, who: str) -> None:
    """Refuses an ``allocate(size, alignment, flags)`` that is not: size and flags non-negative ints,
    alignment a positive power of two (bools and floats are refused). Cheap when the request is good."""
    if type(size) is int and type(alignment) is int and type(flags) is int and size >= 0 and flags >= 0 \
            and alignment > 0 and not alignment & (alignment - 1):
        return
    from ..arguments import integer
    integer(size, f"{who}: size (bytes)", minimum=0)
    integer(flags, f"{who}: flags", minimum=0)
    alignment = integer(alignment, f"{who}: alignment (bytes)", minimum=1)
    if alignment & (alignment - 1):
        raise ArgumentError(f"{who}: alignment must be a power of two (such as {DEFAULT_ALIGNMENT}), not {alignment}")


def check_allocator(base: Any, who: str) -> Any:
    """``base`` if it has callable ``allocate`` and ``free`` (the allocator protocol)."""
    if not (callable(getattr(base, "allocate", None)) and callable(getattr(base, "free", None))):
        raise ArgumentError(f"{who}: base must be an allocator (an object with allocate(size, alignment, flags) "
                            f"and free(buffer)), not {type(base).__name__} {base!r:.60}; pass device.allocator")
    return base


def handle(buffer: Any) -> Any:
    """What an allocator keeps to know a block it handed out when it comes back: a weak reference (so a
    block dropped without ``free`` and another object given its ``id`` later are not confused)."""
    try:
        return weakref.ref(buffer)
    except TypeError:                   # not weakly referable: keep the object itself
        return lambda: buffer


def not_ours(buffer: Any, who: str) -> ArgumentError:
    return ArgumentError(f"{who}: {type(buffer).__name__} {buffer!r:.60} was not allocated by this allocator, or was "
                         "freed already; free each buffer once, through the allocator that allocated it")


def host_array_spec(shape: Any, dtype: Any, who: str) -> tuple:
    """``(shape, dtype)`` for a new host array: shape an int or a tuple of non-negative ints that fits
    in the machine's memory, dtype a NumPy numeric dtype. Raises ArgumentError/AllocationError."""
    from ..arguments import fits_in_host_memory, integer
    if not isinstance(shape, tuple):
        if isinstance(shape, list):
            shape = tuple(shape)
        elif isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shape = (int(shape),)
        else:
            raise ArgumentError(f"{who}: shape must be a tuple of ints, not {type(shape).__name__} {shape!r:.40}")
    shape = tuple(integer(d, f"{who}: dimension {i} of shape {shape!r}", minimum=0) for i, d in enumerate(shape))
    dt = numeric_dtype(dtype, who)
    fits_in_host_memory(int(np.prod(shape, dtype=object)) * dt.itemsize, f"{who}{shape}",
                        "ask for a smaller array")
    return shape, dt


def numeric_dtype(dtype: Any, who: str) -> np.dtype:
    """``np.dtype(dtype)`` if it is a numeric type (bool, ints, floats, complex, ml_dtypes' bfloat16)."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"{who}: dtype {dtype!r:.40} is not a NumPy data type ({exc}); pass one such as "
                            "'float32' or numpy.float16") from None
    if dt.kind not in "biufcV" or dt.hasobject or dt.names is not None or dt.itemsize == 0:
        raise ArgumentError(f"{who}: dtype {dt} is not numeric; pass one such as 'float32' or numpy.float16")
    return dt


def numeric_host_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a NumPy array of numbers (strings, objects and ragged lists are refused)."""
    if type(value) is not np.ndarray:
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"{what} must be an array of numbers, not {type(value).__name__} ({exc}); pass a "
                                "NumPy array with one shape and a numeric dtype") from None
    if value.dtype.kind not in "biufcV" or value.dtype.hasobject or value.dtype.names is not None:
        raise ArgumentError(f"{what} must be an array of numbers, not one of {value.dtype} (from "
                            f"{type(value).__name__}); pass a NumPy array with a numeric dtype")
    return value



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
        self.base = check_allocator(base, "CountingAllocator")
        self._lock = threading.Lock()
        self._live: dict[int, tuple] = {}     # id(buffer) -> (bytes, tag, handle)
        self.in_use_bytes = 0
        self.peak_bytes = 0
        self.by_tag: dict[str, int] = {}

    def allocate(self, size: int, alignment: int = DEFAULT_ALIGNMENT, flags: int = 0) -> Any:
        check_request(size, alignment, flags, "CountingAllocator.allocate")
        try:
            raw = self.base.allocate(size, alignment, flags)
        except AllocationError:
            raise
        except MemoryError as exc:
            raise AllocationError(f"CountingAllocator.allocate: {size} bytes could not be allocated ({exc}) with "
                                  f"{self.in_use_bytes} bytes held through this allocator; ask for less memory "
                                  "or free buffers first") from exc
        buf_bytes = int(getattr(raw, "nbytes", size))
        tag = current_scope().tag
        with self._lock:
            self._live[id(raw)] = (buf_bytes, tag, handle(raw))
            self.in_use_bytes += buf_bytes
            self.by_tag[tag] = self.by_tag.get(tag, 0) + buf_bytes
            self.peak_bytes = max(self.peak_bytes, self.in_use_bytes)
        return raw

    def free(self, buffer: Any) -> None:
        with self._lock:
            info = self._live.get(id(buffer))
            if info is None or info[2]() is not buffer:
                raise not_ours(buffer, "CountingAllocator.free")
            del self._live[id(buffer)]
            size, tag, _ = info
            self.in_use_bytes -= size
            self.by_tag[tag] = self.by_tag.get(tag, 0) - size
        self.base.free(buffer)
