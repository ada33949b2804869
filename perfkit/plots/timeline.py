"""Timelines drawn from run frames: layers on their streams, and device memory over time."""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..arguments import flag, frame as check_frame, integer, number
from ..errors import ArgumentError
from ._axes import check_ax, figure_and_axes, say_empty


def plot_layer_timeline(layer_times: pd.DataFrame, iterations: Any = None, ax: Any = None, label_min_pct: float = 4.0) -> Any:
    """One lane per (context, stream); each layer a bar from its start to its end, coloured by type.
    ``iterations``: an int, a list, or None for the last three profiled inferences."""
    import matplotlib
    df = check_frame(layer_times, "plot_layer_timeline: layer_times",
                     ("iteration", "start_ns", "end_ns", "context", "stream", "type", "layer"))
    number(label_min_pct, "plot_layer_timeline: label_min_pct", 0, 100)
    its = sorted(df["iteration"].unique())
    if iterations is not None:
        wanted = [iterations] if not isinstance(iterations, (list, tuple, range)) else list(iterations)
        wanted = [integer(i, "plot_layer_timeline: iterations (an int, a list of ints or None)") for i in wanted]
        missing = sorted(set(wanted) - set(its))
        if missing or not wanted:
            raise ArgumentError(f"plot_layer_timeline: iterations {missing or wanted} are not in the frame; "
                                f"it holds iterations {its[0] if its else '-'}..{its[-1] if its else '-'}")
        iterations = wanted
    check_ax(ax, "plot_layer_timeline")
    fig, ax = figure_and_axes(ax, (10, 3.2))
    if df.empty:
        say_empty(ax, "layer times")
        return fig
    if iterations is None:
        iterations = its[-3:]
    df = df[df["iteration"].isin(iterations)]
    t0 = int(df["start_ns"].min())
    lanes = {k: i for i, k in enumerate(sorted(set(zip(df["context"], df["stream"]))))}
    types = sorted(df["type"].unique())
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    cmap = {t: colors[i % len(colors)] for i, t in enumerate(types)}
    span = (int(df["end_ns"].max()) - t0) / 1e6 or 1.0
    for r in df.itertuples(index=False):
        y = lanes[(r.context, r.stream)]
        x = (r.start_ns - t0) / 1e6
        w = max((r.end_ns - r.start_ns) / 1e6, span * 1e-4)
        ax.barh(y, w, left=x, height=0.6, color=cmap[r.type], edgecolor="white", linewidth=0.3)
        if 100 * w / span >= label_min_pct:
            ax.text(x + w / 2, y, r.layer if len(r.layer) < 24 else r.layer[:22] + "…", ha="center", va="center",
                    fontsize=6, clip_on=True)
    ax.set_yticks(list(lanes.values()), [f"{c}\n{s}" for c, s in lanes], fontsize=7)
    ax.set_xlabel("time since the first layer shown (ms)")
    ax.set_title(f"layer timeline — inferences {', '.join(map(str, iterations))}")
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=cmap[t], label=t) for t in types], fontsize=7, ncol=min(len(types), 6),
              loc="upper right")
    ax.invert_yaxis()
    return fig


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
