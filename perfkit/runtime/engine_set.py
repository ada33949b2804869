"""EngineSet (guide 2.1): engines built for several maximum batch sizes; each batch runs on the
smallest engine that fits it, so a batch of 3 does not pay for an engine tuned for 256."""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Iterable

import pandas as pd

from ..errors import BatchSizeError, BindingError, BuildError
from ..frames.schemas import ENGINE_DISPATCH


class EngineSet:
    """``EngineSet(network, batch_sizes=[1, 8, 64], config=None, device=None)``.

    ``config`` is a :class:`BuilderConfig` whose ``max_batch_size`` is replaced per engine; all
    engines share its timing cache. ``engines`` maps each max batch size to its engine.
    """

    def __init__(self, network: Any, batch_sizes: Iterable[int], config: Any = None, device: Any = None,
                 allocator: Any = None):
        from ..builder import Builder, BuilderConfig
        from ..builder.tactics import TimingCache, as_cache
        sizes = sorted({int(b) for b in batch_sizes})
        if not sizes or sizes[0] < 1:
            raise BuildError(f"EngineSet needs positive batch sizes, got {list(batch_sizes)}")
        base = config or BuilderConfig()
        cache = as_cache(base.timing_cache) or TimingCache()
        builder = Builder(device, allocator)
        self.network_name = network.name
        self.engines = {}
        for b in sizes:
            cfg = dataclasses.replace(base, max_batch_size=b, timing_cache=cache)
            self.engines[b] = builder.build(network, cfg)
        self.device = builder.device

    @property
    def batch_sizes(self) -> list:
        return list(self.engines)

    @property
    def max_batch_size(self) -> int:
        return max(self.engines)

    def engine_for(self, batch: int) -> Any:
        """The engine built for the smallest maximum batch size that holds ``batch``."""
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
        return f"<EngineSet {self.network_name!r}: max batch sizes {self.batch_sizes} on {self.device.spec}>"


class EngineSetContext:
    """Runs each call on the best-fitting engine of its set; ``dispatch`` says which engine ran."""

    def __init__(self, engine_set: EngineSet):
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
        batch = batch_size if batch_size is not None else int(next(iter(inputs.values())).shape[0])
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
