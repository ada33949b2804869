"""Shared plumbing of the plot functions: draw on the given axes, or on a new figure."""
from __future__ import annotations

from typing import Any

from ..errors import ArgumentError


def check_ax(ax: Any, what: str) -> None:
    """``ax`` must be None (a new figure) or a matplotlib Axes."""
    if ax is None:
        return
    from matplotlib.axes import Axes
    if not isinstance(ax, Axes):
        raise ArgumentError(f"{what}: ax must be a matplotlib Axes or None (a new figure), not {type(ax).__name__}")


def figure_and_axes(ax: Any, figsize: tuple, **subplots: Any) -> tuple:
    """``(ax.figure, ax)``, or a new constrained-layout figure of ``figsize`` (``subplots``: more
    arguments of ``pyplot.subplots``, such as ``nrows``, ``sharex``, ``gridspec_kw``)."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=figsize, layout="constrained", **subplots)


def say_empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)


BYTE_UNITS = (("B", 1), ("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30), ("TiB", 2**40))


def bytes_unit(max_bytes: float) -> tuple:
    """(name, bytes per unit) for values up to ``max_bytes``: the largest unit that keeps it at 1 or more."""
    for name, per in reversed(BYTE_UNITS):
        if abs(max_bytes) >= per:
            return name, per
    return BYTE_UNITS[0]


def human_bytes(n: float) -> str:
    """``1736704`` -> ``'1.66 MiB'``; three significant figures, whole bytes below 1 KiB."""
    name, per = bytes_unit(n)
    return f"{n:.0f} B" if per == 1 else f"{_three(n / per)} {name}"


def _three(v: float) -> str:
    """Three significant figures without an exponent: 1020, 102, 10.2, 1.02."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def human_ms(ms: float) -> str:
    """A duration in ms as ``'850 µs'``, ``'1.23 ms'`` or ``'2.5 s'``: three significant figures."""
    if abs(ms) < 1.0:
        return f"{_three(ms * 1e3)} µs"
    return f"{_three(ms)} ms" if abs(ms) < 1000 else f"{_three(ms / 1e3)} s"


def ms_unit(max_ms: float) -> tuple:
    """(name, ms per unit) for an axis of durations up to ``max_ms``: µs below 1 ms, else ms."""
    return ("µs", 1e-3) if abs(max_ms) < 1.0 else ("ms", 1.0)


def title_parts(frame: Any, *frames: Any) -> list:
    """What a title names, from the attrs and columns of ``frame`` (and ``frames``): model, device,
    precision and batch size, each where known; several values are joined with '/'."""
    parts = []
    for keys, col in ((("model", "network", "engine"), "model"), (("device_name", "device"), "device"),
                      (("precision",), "precision"), (("batch_size",), "batch_size")):
        vals = _known(keys, col, (frame, *frames))
        if vals:
            text = "/".join(map(str, vals[:6])) + ("/…" if len(vals) > 6 else "")
            parts.append(f"batch {text}" if col == "batch_size" else text)
    return parts


def _known(keys: tuple, col: str, frames: tuple) -> list:
    for f in frames:
        if f is None:
            continue
        for k in keys:
            if f.attrs.get(k) not in (None, ""):
                return [f.attrs[k]]
        if col in getattr(f, "columns", ()) and len(f):
            vals = f[col].dropna().unique()
            if len(vals):
                return sorted(vals.tolist())
    return []
