"""Timelines drawn from run frames: layers on their streams (``layer_timeline.py``), and device memory over time."""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..arguments import flag, frame as check_frame
from ._axes import check_ax, figure_and_axes, say_empty
from .layer_timeline import plot_layer_timeline

__all__ = ["plot_layer_timeline", "plot_memory"]


def plot_memory(memory_events: pd.DataFrame, ax: Any = None, by_tag: bool = True) -> Any:
    """Device memory held through the tracking allocator over time (a step line), with the peak, and
    one line per tag when ``by_tag``."""
    ev = check_frame(memory_events, "plot_memory: memory_events",
                     ("ts_ns", "in_use_bytes", "peak_bytes", "action", "size_bytes", "tag"))
    flag(by_tag, "plot_memory: by_tag")
    check_ax(ax, "plot_memory")
    fig, ax = figure_and_axes(ax, (8, 3.2))
    if ev.empty:
        say_empty(ax, "memory events")
        return fig
    t = (ev["ts_ns"] - ev["ts_ns"].min()) / 1e6
    ax.step(t, ev["in_use_bytes"] / 2**20, where="post", label="in use (all tags)", color="black")
    ax.axhline(ev["peak_bytes"].max() / 2**20, color="gray", ls="--", lw=0.8, label="peak")
    if by_tag:
        sign = ev["action"].map({"alloc": 1, "free": -1, "oom": 0})
        for tag, g in ev.assign(delta=ev["size_bytes"] * sign).groupby("tag"):
            ax.step(t[g.index], g["delta"].cumsum() / 2**20, where="post", lw=1, label=tag)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("MiB")
    ax.set_title("device memory over time (tracking allocator)")
    ax.legend(fontsize=7)
    return fig
