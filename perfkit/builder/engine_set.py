"""EngineSet (guide 2.1): a network built for several maximum batch sizes. Building is the
builder's work; choosing the engine per batch is the runtime's (:class:`EngineDispatch`)."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from ..arguments import positive_int
from ..errors import ArgumentError
from ..runtime.engine_set import EngineDispatch


class EngineSet(EngineDispatch):
    """``EngineSet(network, batch_sizes=[1, 8, 64], config=None, device=None)``.

    ``config`` is a :class:`BuilderConfig` whose ``max_batch_size`` is replaced per engine; all
    engines share its timing cache. ``engines`` maps each max batch size to its engine.
    """

    def __init__(self, network: Any, batch_sizes: Iterable[int], config: Any = None, device: Any = None,
                 allocator: Any = None):
        from ..network import Network
        from .builder import Builder
        from .config import BuilderConfig
        from .tactics import TimingCache, as_cache
        if not isinstance(network, Network):
            raise ArgumentError(f"EngineSet needs a perfkit Network, not {type(network).__name__}")
        if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Iterable):
            raise ArgumentError(f"EngineSet: batch_sizes must be a list of positive ints, not {batch_sizes!r}")
        sizes = sorted({positive_int(b, "EngineSet: each batch size") for b in batch_sizes})
        if not sizes:
            raise ArgumentError("EngineSet needs at least one batch size, such as [1, 8, 64]")
        if config is not None and not isinstance(config, BuilderConfig):
            raise ArgumentError(f"EngineSet: config must be a BuilderConfig or None, not {type(config).__name__}")
        base = config or BuilderConfig()
        cache = as_cache(base.timing_cache) or TimingCache()
        builder = Builder(device, allocator)
        engines = [builder.build(network, dataclasses.replace(base, max_batch_size=b, timing_cache=cache))
                   for b in sizes]
        super().__init__(engines)
