"""Network -> Engine: :class:`Builder` and :class:`BuilderConfig`; :class:`EngineSet` builds one
network for several maximum batch sizes."""
from .builder import Builder
from .config import BuilderConfig
from .engine_set import EngineSet

__all__ = ["Builder", "BuilderConfig", "EngineSet"]
