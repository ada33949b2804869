"""Argument checks of the throughput, batching, load and transfer functions, done before anything is
built, started or timed, so that a bad argument costs nothing and leaves nothing behind."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..arguments import number, optional_positive_int, positive_int
from ..errors import ArgumentError, BatchSizeError

MAX_STREAMS = 64          # one execution context each; more is a typo, not a measurement
MAX_CLIENTS = 4096        # client threads of a closed-loop load


def engine_arg(engine: Any, what: str, batch: int | None = None) -> Any:
    """An Engine, or the engine an EngineSet runs ``batch`` on (its largest when ``batch`` is None)."""
    from ..runtime.engine import Engine
    from ..runtime.engine_set import EngineDispatch
    if isinstance(engine, EngineDispatch):
        return engine.engine_for(batch or engine.max_batch_size)
    if not isinstance(engine, Engine):
        raise ArgumentError(f"{what}: engine must be a perfkit Engine (perfkit.Builder().build(network, config)) "
                            f"or an EngineSet, not {type(engine).__name__} {engine!r:.40}")
    engine._check_open(what)
    return engine


def batch_arg(batch_size: Any, limit: int, what: str) -> int | None:
    batch = optional_positive_int(batch_size, f"{what}: batch_size")
    if batch is not None and batch > limit:
        raise BatchSizeError(f"{what}: batch_size {batch} is larger than the engine's max_batch_size {limit}; "
                             "build the engine for a larger batch, or pass a smaller batch_size")
    return batch


def streams_threads(streams: Any, threads: Any, what: str) -> tuple[int, int]:
    """(streams, threads): threads defaults to one per stream and may not exceed the streams."""
    n = positive_int(streams, f"{what}: streams (execution contexts, one stream each)", maximum=MAX_STREAMS)
    if threads is None:
        return n, n
    m = positive_int(threads, f"{what}: threads (worker threads, each owning at least one context and stream)",
                     maximum=MAX_STREAMS)
    if m > n:
        raise ArgumentError(f"{what}: threads={m} is more than streams={n}; each worker thread owns at least one "
                            "execution context and its stream: pass threads <= streams (or more streams)")
    return n, m


def _listed(values: Any) -> Any:
    """A 1-D NumPy array or pandas Series as a list (other values unchanged)."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values.tolist()
    if type(values).__name__ == "Series" and hasattr(values, "tolist"):
        return values.tolist()
    return values


def int_list(values: Any, what: str, maximum: int | None = None) -> list:
    """A non-empty sequence of positive ints (a single int is a list of one; arrays and Series are lists)."""
    values = _listed(values)
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ArgumentError(f"{what} must be a positive int or a non-empty sequence of them, such as (1, 2, 4, 8), "
                            f"not {values!r:.60}")
    return [positive_int(v, f"{what} (each)", maximum=maximum) for v in values]


def number_list(values: Any, what: str, minimum: float = 0.0) -> list:
    """A non-empty sequence of finite numbers >= minimum (a single number is a list of one; arrays and Series
    are lists)."""
    values = _listed(values)
    if isinstance(values, (int, float, np.integer, np.floating)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ArgumentError(f"{what} must be a number or a non-empty sequence of numbers, such as (0, 1, 2, 5), "
                            f"not {values!r:.60}")
    return [number(v, f"{what} (each)", minimum=minimum) for v in values]


def host_inputs(engine: Any, inputs: Any, batch: int, what: str) -> dict:
    """One host array per engine input, of the engine's dtype, with at least ``batch`` samples."""
    names = list(engine.input_names)
    if not isinstance(inputs, dict) or sorted(inputs) != sorted(names):
        got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ArgumentError(f"{what}: inputs must be a dict with exactly the engine's inputs {names} "
                            f"(perfkit.models.sample_input(engine, batch) makes one), got {got}")
    for n in names:
        a = inputs[n]
        want = (batch,) + tuple(engine.get_binding_shape(n))
        shape = tuple(getattr(a, "shape", ()))
        if not isinstance(a, np.ndarray) or len(shape) != len(want) or shape[0] < batch or shape[1:] != want[1:]:
            raise ArgumentError(f"{what}: input {n!r} must be a NumPy array of shape {want} (at least {batch} "
                                f"samples), got {shape or type(a).__name__}")
        if a.dtype != np.dtype(engine.get_binding_dtype(n)):
            raise ArgumentError(f"{what}: input {n!r} must be {engine.get_binding_dtype(n)}, not {a.dtype}")
    return inputs
