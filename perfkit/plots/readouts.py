"""What the pointer is over, in words: each axes' ``format_coord`` (the readout ipympl and other interactive
backends show on hover) says the time in the axis's unit and what was there, instead of ``(x, y) = (637., )``."""
from __future__ import annotations

from typing import Any

import numpy as np

from ._axes import at_resolution, four
from .layer_style import short_name


def timeline_readout(ax: Any, x: Any, w: Any, y: Any, layers: Any, iterations: Any, lane_names: dict,
                     unit: str) -> None:
    """``t = 637 µs · conv2 (inference 3)`` over a layer bar of the timeline, else the time and the lane."""
    x, w, y = np.asarray(x, float), np.asarray(w, float), np.asarray(y, float)
    layers, iterations = np.asarray(layers, object), np.asarray(iterations)

    def coord(xv: float, yv: float) -> str:
        lane = int(round(yv))
        hit = np.flatnonzero((y == lane) & (x <= xv) & (xv <= x + w))
        said = f"t = {at_resolution(xv, _width(ax))} {unit}"
        if len(hit):
            i = hit[-1]
            return f"{said} · {short_name(str(layers[i]), 48)} (inference {iterations[i]})"
        return said + (f" · {lane_names[lane]}" if lane in lane_names else "")
    ax.format_coord = coord


def memory_readout(ax: Any, x: Any, t_ms: Any, held: Any, unit: str, per: float) -> None:
    """``t = 12.1 ms · held 3.63 MiB``: the real time under the pointer, to the visible range's resolution (the x
    axis may have cut gaps, so x is mapped back through the points drawn), and the total held from the step at or
    before it."""
    x, t_ms, held = np.asarray(x, float), np.asarray(t_ms, float), np.asarray(held, float)

    def coord(xv: float, yv: float) -> str:
        i = int(np.clip(np.searchsorted(x, xv, "right") - 1, 0, len(x) - 1))
        lo, hi = np.interp(ax.get_xlim(), x, t_ms)                   # the real times shown (gaps may be cut)
        t = float(np.interp(xv, x, t_ms))
        return f"t = {at_resolution(t, hi - lo)} ms · held {four(held[i] / per)} {unit}"
    ax.format_coord = coord


def _width(ax: Any) -> float:
    """The visible x range now (after a zoom, a readout gets finer)."""
    lo, hi = ax.get_xlim()
    return abs(hi - lo)


def sweep_readout(ax: Any, x_label: str, categories: dict, y_label: str, unit: str) -> None:
    """``batch size 16 · median latency 0.132 ms`` (a categorical x, such as precision, by its name)."""
    def coord(xv: float, yv: float) -> str:
        at = categories.get(int(round(xv)), "") if categories else four(xv)
        return f"{x_label} {at} · {y_label} {four(yv)} {unit}"
    ax.format_coord = coord
