"""Engines, execution contexts and engine files."""
from .context import ExecutionContext
from .engine import Engine
from .serialize import load_engine

__all__ = ["Engine", "ExecutionContext", "load_engine"]
