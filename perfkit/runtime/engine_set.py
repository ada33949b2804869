"""Dispatch over engines built for several maximum batch sizes (guide 2.1): each batch runs on the
smallest engine that fits it, so a batch of 3 does not pay for an engine tuned for 256.

The runtime holds only the choice among engines that exist; building them from a network is the
builder's part (:class:`perfkit.builder.EngineSet`, exported as ``perfkit.EngineSet``).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Iterable

import pandas as pd

from ..arguments import optional_positive_int, positive_int
from ..errors import ArgumentError, BatchSizeError, BindingError
from ..frames.schemas import ENGINE_DISPATCH
from .engine import Engine


class EngineDispatch:
    """Engines of one network, one per maximum batch size; ``engines`` maps each max batch size to
    its engine, smallest first."""

    def __init__(self, engines: Iterable[Engine]):
        engines = list(engines) if not isinstance(engines, (str, bytes)) and isinstance(engines, Iterable) else None
        if not engines or not all(isinstance(e, Engine) for e in engines):
            raise ArgumentError("an engine set needs a non-empty list of Engines")
        sizes = [e.max_batch_size for e in engines]
        if len(set(sizes)) != len(sizes):
            raise ArgumentError(f"the engines of a set need distinct max batch sizes, got {sorted(sizes)}")
        if len({e.name for e in engines}) != 1 or len({e.device.spec for e in engines}) != 1:
            raise ArgumentError("the engines of a set must be built from one network for one device")
        self.engines = {e.max_batch_size: e for e in sorted(engines, key=lambda e: e.max_batch_size)}
        self.network_name = engines[0].name
        self.device = engines[0].device

    @property
    def batch_sizes(self) -> list:
        return list(self.engines)

    @property
    def max_batch_size(self) -> int:
        return max(self.engines)

    def engine_for(self, batch: int) -> Any:
        """The engine built for the smallest maximum batch size that holds ``batch`` (a positive int)."""
        batch = positive_int(batch, "engine_for: batch")
        for b, e in self.engines.items():
            if batch <= b:
                return e
        raise BatchSizeError(f"batch of {batch} is larger than every engine in the set (largest: "
                             f"{self.max_batch_size}); add a larger batch size to the EngineSet")

    @property
    def device_memory_bytes(self) -> int:
        return sum(e.device_memory_bytes for e in self.engines.values())

    def create_execution_context(self) -> "EngineSetContext":
        return EngineSetContext(self)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.network_name!r}: max batch sizes {self.batch_sizes} "
                f"on {self.device.spec}>")


class EngineSetContext:
    """Runs each call on the best-fitting engine of its set; ``dispatch`` says which engine ran."""

    def __init__(self, engine_set: EngineDispatch):
        if not isinstance(engine_set, EngineDispatch):
            raise ArgumentError(f"EngineSetContext needs an EngineSet (use engine_set.create_execution_context()), "
                                f"not {type(engine_set).__name__}")
        self.engine_set = engine_set
        self._contexts: dict = {}
        self._rows: list = []
        self._lock = threading.Lock()
        self.last_engine = None

    def _context(self, engine: Any) -> Any:
        with self._lock:
            if engine.max_batch_size not in self._contexts:
                self._contexts[engine.max_batch_size] = engine.create_execution_context()
            return self._contexts[engine.max_batch_size]

    def execute(self, inputs: dict, batch_size: int | None = None) -> dict:
        if not isinstance(inputs, dict) or not inputs:
            raise BindingError("inputs must be a non-empty dict of name -> array")
        batch = optional_positive_int(batch_size, "execute: batch_size")
        if batch is None:
            shape = getattr(next(iter(inputs.values())), "shape", ())
            if not shape:
                raise BindingError("inputs must be arrays with a leading batch dimension (or pass batch_size)")
            batch = int(shape[0])
        engine = self.engine_set.engine_for(batch)
        t0 = time.perf_counter_ns()
        out = self._context(engine).execute(inputs, batch_size)
        t1 = time.perf_counter_ns()
        self.last_engine = engine
        with self._lock:
            self._rows.append({"ts_ns": t0, "batch_size": int(batch), "engine_max_batch_size": engine.max_batch_size,
                               "engine_id": engine.id, "latency_ms": (t1 - t0) / 1e6})
        return out

    @property
    def dispatch(self) -> pd.DataFrame:
        """One row per call: batch size, the max batch size of the engine that ran it, latency."""
        with self._lock:
            rows = list(self._rows)
        return ENGINE_DISPATCH.frame(rows, {"network": self.engine_set.network_name})
