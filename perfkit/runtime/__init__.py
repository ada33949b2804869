"""Engines, execution contexts and engine files."""
from .context import ExecutionContext
from .engine import Engine
from .engine_set import EngineDispatch, EngineSetContext
from .serialize import load_engine

__all__ = ["Engine", "EngineDispatch", "EngineSetContext", "ExecutionContext", "load_engine"]
