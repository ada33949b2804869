"""Network -> Engine: :class:`Builder` and :class:`BuilderConfig`."""
from .builder import Builder
from .config import BuilderConfig

__all__ = ["Builder", "BuilderConfig"]
