"""Progress bars (``tqdm.auto``) for the long loops of perfkit: tactic timing here, and above it sweeps and
``fusion_benefit``. Lives in the builder, the lowest layer with such a loop, so every layer above can use it.

``progress=None`` means automatic: a bar where someone watches (stderr a terminal, or an IPython kernel:
a notebook), none when output goes to a file or a pipe, and none under pytest. ``True``/``False`` force
it. Without tqdm installed there is never a bar. A bar with ``delay`` appears only once that many seconds
have passed, so quick loops print nothing.
"""
from __future__ import annotations

import os
import sys
from typing import Any


def progress_wanted(progress: Any, what: str) -> bool:
    """Whether to draw a bar: ``progress`` True/False, or None for automatic (see the module)."""
    if progress is None:
        if os.environ.get("PYTEST_CURRENT_TEST"):
            return False
        if _in_a_kernel():
            return True
        try:
            return sys.stderr is not None and sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False
    from ..arguments import flag
    return flag(progress, f"{what}: progress (True, False or None for automatic)")


def _in_a_kernel() -> bool:
    """Whether this process is a Jupyter kernel running IPython (a module that merely imported ipykernel,
    through ipywidgets or ipympl, is not one)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return getattr(shell, "kernel", None) is not None


class _NoBar:
    total = 0

    def update(self, n: int = 1) -> None:
        return None

    def set_postfix_str(self, text: str) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def progress_bar(total: int, desc: str, enabled: bool, delay: float = 0.0) -> Any:
    """A ``tqdm.auto`` bar of ``total`` steps (or a silent stand-in when not ``enabled`` or tqdm is
    missing); use as a context manager and call ``update()`` per step."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, delay=delay, leave=False, dynamic_ncols=True)
