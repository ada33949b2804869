"""NVTX ranges named after engine layers, so Nsight Systems timelines show perfkit's layer names."""
from __future__ import annotations

from typing import Any


class NvtxHook:
    """A step hook: pushes an NVTX range per layer (``nvtx`` package), domain ``perfkit``."""

    def __init__(self) -> None:
        import nvtx  # raises ImportError when the package is missing
        self._push = nvtx.push_range
        self._pop = nvtx.pop_range

    def enter(self, index: int, step: Any) -> None:
        self._push(message=step.name, domain="perfkit")

    def exit(self, index: int, step: Any) -> None:
        self._pop(domain="perfkit")
