"""Validation of what a call hands an execution context: bindings, batch size, stream and event.

Every check runs before a context touches its buffers, so a rejected call changes nothing.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..device.cpu import CpuEvent, CpuStream
from ..errors import BatchSizeError, BindingError


def check_bindings(plan: Any, device: Any, given: Any, batch_size: int | None, for_enqueue: bool) -> tuple:
    """(batch, name -> array, name -> whether the array is on the host) for one call, or a
    :class:`BindingError` / :class:`BatchSizeError` that names the problem and the fix.
    ``execute`` takes host or device arrays of any float (int) dtype for float (int32) inputs;
    ``enqueue`` takes contiguous device arrays of the exact dtype, for inputs and optionally outputs."""
    if not isinstance(given, Mapping):
        raise BindingError(f"inputs must be a dict of name -> array, not {type(given).__name__}; "
                           f"this engine's inputs: {plan.inputs}")
    allowed = set(plan.inputs) | (set(plan.outputs) if for_enqueue else set())
    missing = [n for n in plan.inputs if n not in given]
    extra = [n for n in given if n not in allowed]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input(s) {missing}")
        if extra:
            parts.append(f"unknown name(s) {extra}")
        raise BindingError(f"{' and '.join(parts)}; engine {plan.name!r} takes inputs {plan.inputs}"
                           + (f" and optional output bindings {plan.outputs}" if for_enqueue else ""))
    arrays, host, batches = {}, {}, {}
    for n, a in given.items():
        spec = plan.tensors[n]
        is_dev = device.kind != "cpu" and device.is_device_array(a)
        if for_enqueue and not device.is_device_array(a):
            raise BindingError(f"binding {n!r}: enqueue needs arrays on the {device.spec} device "
                               f"(got {type(a).__name__}); use execute() for host arrays or copy with "
                               "engine.device.to_device()")
        if not is_dev:
            if type(a).__module__.split(".")[0] == "cupy":
                raise BindingError(f"input {n!r} is a CuPy array but the engine runs on {device.spec}; "
                                   "pass a NumPy array (cupy.asnumpy)")
            try:
                a = np.asarray(a)
            except Exception as exc:
                raise BindingError(f"input {n!r} could not be read as an array: {exc}") from None
        want = (None,) + tuple(spec.shape)
        shape = tuple(a.shape)
        if len(shape) != len(want) or shape[1:] != want[1:]:
            raise BindingError(f"{'binding' if for_enqueue else 'input'} {n!r} has shape {shape}; expected "
                               f"(batch, {', '.join(map(str, spec.shape))}) — per-sample shape {tuple(spec.shape)} "
                               "with a leading batch dimension")
        check_dtype(n, a, spec.dtype, exact=for_enqueue or n in plan.outputs)
        if spec.dtype == "int32" and a.dtype != np.int32 and a.size:
            lo, hi = int(a.min()), int(a.max())
            if lo < -2**31 or hi >= 2**31:
                raise BindingError(f"input {n!r} holds values {lo}..{hi} outside the int32 range")
        if for_enqueue and not a.flags.c_contiguous:
            raise BindingError(f"binding {n!r} is not C-contiguous; pass a contiguous array")
        arrays[n], host[n], batches[n] = a, not is_dev, shape[0]
    in_batches = {batches[n] for n in plan.inputs}
    if len(in_batches) != 1:
        raise BatchSizeError(f"inputs disagree on the batch size: {{{', '.join(f'{n}: {batches[n]}' for n in plan.inputs)}}}")
    available = in_batches.pop()
    batch = available if batch_size is None else batch_size
    if not isinstance(batch, (int, np.integer)) or isinstance(batch, bool) or batch < 1:
        raise BatchSizeError(f"batch_size must be a positive int, not {batch!r}")
    batch = int(batch)
    if batch > plan.max_batch_size:
        raise BatchSizeError(f"batch of {batch} is larger than this engine's max_batch_size "
                             f"({plan.max_batch_size}); split the batch or build with a larger "
                             "BuilderConfig(max_batch_size=...)")
    short = {n: b for n, b in batches.items() if b < batch}
    if short:
        raise BatchSizeError(f"batch_size={batch} but these arrays hold fewer samples: {short}")
    return batch, arrays, host


class BindingCache:
    """The host fast path of a warm context: the last accepted call's binding signature (names, array
    types, shapes, dtypes, contiguity, the batch size asked for) and what validating it gave. A call
    with the same signature is the same call as far as validation goes, so it skips the checks; only
    calls whose arrays were used as given are remembered (no list converted, no integer input whose
    values had to be range-checked)."""

    __slots__ = ("key", "batch", "host")

    def __init__(self) -> None:
        self.key: Any = None
        self.batch = 0
        self.host: dict = {}

    @staticmethod
    def signature(given: Any, batch_size: Any, for_enqueue: bool) -> Any:
        """A hashable signature of the call, or None when it cannot be had cheaply (not a dict, an item
        that is not an array)."""
        if type(given) is not dict or type(batch_size) not in (int, type(None)):
            return None
        try:
            return (batch_size, for_enqueue) + tuple(
                (n, type(a), a.shape, a.dtype, a.flags.c_contiguous if for_enqueue else None,
                 None if type(a) is np.ndarray else a.device) for n, a in given.items())
        except AttributeError:
            return None


def check_bindings_cached(cache: BindingCache, plan: Any, device: Any, given: Any, batch_size: int | None,
                          for_enqueue: bool) -> tuple:
    """:func:`check_bindings`, skipped when the call's signature is the last accepted one's."""
    key = cache.signature(given, batch_size, for_enqueue)
    if key is not None and key == cache.key:
        return cache.batch, given, cache.host
    batch, arrays, host = check_bindings(plan, device, given, batch_size, for_enqueue)
    if key is not None and all(arrays[n] is a for n, a in given.items()) and not any(
            plan.tensors[n].dtype == "int32" and a.dtype != np.int32 for n, a in given.items()):
        cache.key, cache.batch, cache.host = key, batch, host
    else:
        cache.key = None
    return batch, arrays, host


def check_dtype(name: str, a: Any, declared: str, exact: bool) -> None:
    dt = np.dtype(a.dtype)
    if dt == np.dtype(declared):
        return
    if not exact:
        if declared.startswith("float") and dt.kind == "f":
            return
        if declared == "int32" and dt.kind in "iu":
            return
    raise BindingError(f"{name!r} has dtype {dt}; the engine expects {declared}"
                       + ("" if exact else " (any float dtype is converted for float inputs, any integer "
                                           "dtype for int32 inputs)"))


def check_stream(device: Any, stream: Any, event: Any) -> None:
    """The stream (and ``input_consumed`` event) of an ``enqueue`` belong to the engine's device."""
    cpu = device.kind == "cpu"
    if cpu != isinstance(stream, CpuStream) or not hasattr(stream, "synchronize"):
        raise BindingError(f"stream {stream!r} does not belong to the {device.spec} device; "
                           f"create it with engine.device.create_stream()")
    if getattr(stream, "closed", False) is True:
        raise BindingError(f"stream {stream!r} was closed; create a new one with engine.device.create_stream()")
    if event is not None and cpu != isinstance(event, CpuEvent):
        raise BindingError(f"input_consumed {event!r} is not an event of the {device.spec} device; "
                           "create it with engine.device.create_event()")
