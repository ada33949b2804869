"""The layer timeline: every layer execution as a bar on its (context, stream) lane, coloured per layer
(the same colour in every inference), hatched by type, with the kernels it launched on a lane beneath
and the device memory in use on a panel below, all on one time axis."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame, integer, number, positive_int
from ..errors import ArgumentError
from ._axes import WIDTH_IN, check_ax, figure_and_axes, plain_numbers, say_empty
from .layer_lanes import (OUTSIDE_COLORS, OUTSIDE_NAMES, kernels_by_lane, lane_order, outside_kinds,
                          outside_lane_name)
from .layer_marks import iteration_marks
from .layer_style import layer_colors, short_name, time_unit  # noqa: F401 - public here too
from .readouts import timeline_readout

HATCHES = ("", "////", "....", "xxxx", "\\\\\\\\", "++++", "oooo", "----", "****", "||||")
LAYER_COLUMNS = ("iteration", "start_ns", "end_ns", "context", "stream", "type", "layer")
KERNEL_COLUMNS = ("kind", "start_ns", "end_ns", "layer", "iteration", "stream")
MEMORY_COLUMNS = ("ts_ns", "in_use_bytes")
WHAT = "plot_layer_timeline"
KERNEL_MIN_WIDTH = 1.5e-3               # of the window: a 1 µs kernel in a 3 ms window still shows


def plot_layer_timeline(layer_times: pd.DataFrame, iterations: Any = None, ax: Any = None, label_min_pct: float = 0.0,
                        kernels: Any = None, memory_events: Any = None, top: int = 10) -> Any:
    """One lane per (context, stream); each layer execution a bar from its start to its end.

    A layer keeps its colour in every inference (its type is the hatch); a bar is labelled only
    where its name fits inside it (and it spans at least ``label_min_pct`` % of the window); the
    ``top`` slowest layers by total time shown are listed, with their share, in a legend outside
    the axes. Thin dashed lines separate inferences. ``iterations``: an int, a list, or None for the
    last three profiled inferences. ``kernels`` (the run's kernels frame) adds a lane of the kernels
    each stream's layers launched under it; ``memory_events`` adds a panel of the bytes in use (MiB)
    on the same time axis (it needs a new figure: ``ax=None``)."""
    df = check_frame(layer_times, f"{WHAT}: layer_times", LAYER_COLUMNS)
    number(label_min_pct, f"{WHAT}: label_min_pct", 0, 100)
    top = positive_int(top, f"{WHAT}: top (how many of the slowest layers the legend lists)")
    if kernels is not None:
        check_frame(kernels, f"{WHAT}: kernels (the run's kernels frame, or None)", KERNEL_COLUMNS)
    if memory_events is not None:
        check_frame(memory_events, f"{WHAT}: memory_events (the run's memory frame, or None)", MEMORY_COLUMNS)
    its = sorted(df["iteration"].unique())
    if iterations is not None:
        wanted = [iterations] if not isinstance(iterations, (list, tuple, range)) else list(iterations)
        wanted = [integer(i, f"{WHAT}: iterations (an int, a list of ints or None)") for i in wanted]
        missing = sorted(set(wanted) - set(its))
        if missing or not wanted:
            raise ArgumentError(f"{WHAT}: iterations {missing or wanted} are not in the frame; "
                                f"it holds iterations {its[0] if its else '-'}..{its[-1] if its else '-'}")
        iterations = sorted(set(wanted))
    check_ax(ax, WHAT)
    own_figure = ax is None
    with_memory = memory_events is not None and len(memory_events) > 0
    if ax is not None and with_memory:
        raise ArgumentError(f"{WHAT}: the memory panel needs a figure of its own; pass ax=None with "
                            "memory_events, or leave memory_events out to draw on your axes")
    if df.empty:
        fig, ax = _figure(ax, 1, False)
        say_empty(ax, "layer times")
        return fig
    if iterations is None:
        iterations = its[-3:]
    colors = layer_colors(df.sort_values(["iteration", "index"] if "index" in df else ["iteration"])["layer"].unique())
    types = sorted(df["type"].unique())
    hatch = {t: HATCHES[i % len(HATCHES)] for i, t in enumerate(types)}
    df = df[df["iteration"].isin(iterations)]
    t0, t1 = int(df["start_ns"].min()), int(df["end_ns"].max())
    unit, per = time_unit(t1 - t0)
    span = (t1 - t0) / per or 1.0
    kern = kernels_by_lane(kernels, df, iterations, t0, t1)
    lanes = lane_order(df, kern)
    n_layers = df["layer"].nunique()
    legend_rows = min(top, n_layers) + (n_layers > top) + (len(types) + 1 if len(types) > 1 else 0) \
        + len(outside_kinds(kern)) + 1
    fig, ax = _figure(ax, len(lanes), with_memory, legend_rows)
    mem_ax = fig.axes[1] if with_memory else None

    x = (df["start_ns"].to_numpy() - t0) / per
    w = np.maximum((df["end_ns"].to_numpy() - df["start_ns"].to_numpy()) / per, span * 1e-4)
    y = [lanes[(c, s, False)] for c, s in zip(df["context"], df["stream"])]
    bars = ax.barh(y, w, left=x, height=0.7, color=[colors[n] for n in df["layer"]], edgecolor="white", linewidth=0.3)
    for bar, t in zip(bars, df["type"]):
        bar.set_hatch(hatch[t])
        bar.set_gid("layer")
    if kern is not None and len(kern):
        kx = (kern["start_ns"].to_numpy() - t0) / per
        kw = np.maximum((kern["end_ns"].to_numpy() - kern["start_ns"].to_numpy()) / per, span * KERNEL_MIN_WIDTH)
        ky = [lanes[k] for k in kern["lane"]]
        kc = [colors[n] if n in colors else OUTSIDE_COLORS[w] for n, w in zip(kern["layer"], kern["what"])]
        for bar in ax.barh(ky, kw, left=kx, height=0.45, color=kc, edgecolor="none"):
            bar.set_gid("kernel")
    names = [f"{c}\n{s.removeprefix(c + '/')}" if not k else "kernels" if c else outside_lane_name(s, kern)
             for c, s, k in lanes]
    ax.set_yticks(list(lanes.values()), names, fontsize=7)
    timeline_readout(ax, x, w, y, df["layer"], df["iteration"],
                     {v: n.replace("\n", " / ") for v, n in zip(lanes.values(), names)}, unit)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.set_xlim(0, span * 1.005)
    plain_numbers(ax.xaxis)
    if own_figure:          # above the legend too: a long title centred over the axes ran under it
        fig.suptitle(_title(layer_times, df, iterations), fontsize=9, x=0.01, ha="left")
    else:
        ax.set_title(_title(layer_times, df, iterations), fontsize=9, pad=14)
    said = ["memory: no events in memory_events (none recorded in this run)"] \
        if memory_events is not None and not with_memory else []
    _slow_legend(fig, ax, own_figure, df, colors, hatch, types, top, outside_kinds(kern), said)
    if mem_ax is not None:
        _memory_lane(mem_ax, memory_events, t0, t1, per)
        mem_ax.set_xlabel(f"time since the first layer shown ({unit})")
        ax.tick_params(labelbottom=False)
    else:
        ax.set_xlabel(f"time since the first layer shown ({unit})")
    fig.draw_without_rendering()                     # the layout, so labels are measured where they land
    iteration_marks(ax, mem_ax, df, lanes, t0, per)
    _labels(fig, ax, df, x, w, y, span, label_min_pct, [colors[n] for n in df["layer"]])
    return fig


def _figure(ax: Any, n_lanes: int, with_memory: bool, legend_rows: int = 0) -> tuple:
    """A new figure tall enough for its lanes and for the legend beside them (about 0.16 in a row)."""
    if ax is not None:
        return ax.figure, ax
    top_h = 0.5 * max(n_lanes, 2) + 0.9
    legend_h = 0.16 * (legend_rows + 1) + 0.3
    if with_memory:
        fig, (ax, _) = figure_and_axes(None, (WIDTH_IN, max(top_h + 1.6, legend_h)), nrows=2, sharex=True,
                                       gridspec_kw={"height_ratios": [top_h, 1.1]})
        return fig, ax
    return figure_and_axes(None, (WIDTH_IN, max(top_h + 0.6, legend_h)))


def _title(frame: pd.DataFrame, df: pd.DataFrame, iterations: list) -> str:
    a = frame.attrs
    parts = [str(a[k]) for k in ("model", "network", "engine") if a.get(k)][:1]
    ctx = sorted(df["context"].unique())
    parts.append(ctx[0] if len(ctx) == 1 else f"{len(ctx)} contexts")
    parts += [str(a[k]) for k in ("device_name", "device") if a.get(k)][:1]
    if "precision" in df:
        parts.append("/".join(sorted(df["precision"].unique())))
    if "batch_size" in df:
        parts.append("batch " + "/".join(map(str, sorted(df["batch_size"].unique()))))
    which = f"inference{'s' if len(iterations) > 1 else ''} {_ranges(iterations)}"
    return f"layer timeline — {which}\n{' · '.join(parts)}"


def _ranges(numbers: list) -> str:
    """``[0, 1, 2, 5, 7, 8]`` as ``0–2, 5, 7–8``: consecutive inferences said as one range."""
    runs: list = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in runs)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:#.3g}"


def _slow_legend(fig: Any, ax: Any, own_figure: bool, df: pd.DataFrame, colors: dict, hatch: dict, types: list,
                 top: int, outside: list, said: list) -> Any:
    """The ``top`` slowest layers, slowest first, with their total and share; then the type hatches;
    then the colours of the ``outside`` kinds of work that ran under no layer; then the lines ``said``."""
    from matplotlib.patches import Patch
    t = (df["end_ns"] - df["start_ns"]).groupby(df["layer"]).sum().sort_values(ascending=False, kind="stable")
    type_of = df.drop_duplicates("layer").set_index("layer")["type"]
    total = float(t.sum()) or 1.0
    unit, per = time_unit(float(t.iloc[0]))
    rows = t.head(top)
    handles = [Patch(facecolor=colors[n], hatch=hatch[type_of[n]], edgecolor="white",
                     label=f"{short_name(n, 32)}  {_fmt(v / per)} {unit} · {100 * v / total:.1f}%")
               for n, v in rows.items()]
    rest = len(t) - len(rows)
    title = f"slowest layers: total over {df['iteration'].nunique()} inference(s) · share"
    if rest > 0:
        rest_pct = 100 * float(t.iloc[top:].sum()) / total
        handles.append(Patch(visible=False, label=f"{rest} more layers · {rest_pct:.1f}%"))
    if len(types) > 1:
        handles.append(Patch(visible=False, label="layer type (hatch):"))
        handles += [Patch(facecolor="0.85", edgecolor="0.3", hatch=hatch[k], label=k) for k in types]
    if outside:
        handles.append(Patch(visible=False, label="GPU work under no layer:"))
        handles += [Patch(facecolor=OUTSIDE_COLORS[w], label=OUTSIDE_NAMES[w]) for w in outside]
    handles += [Patch(visible=False, label=text) for text in said]
    kw = dict(handles=handles, title=title, fontsize=7, title_fontsize=7, alignment="left")
    if own_figure:
        return fig.legend(loc="outside right upper", **kw)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kw)


def _memory_lane(ax: Any, ev: pd.DataFrame, t0: int, t1: int, per: float) -> None:
    """Bytes in use as a step line over the shown window, starting at the level before it."""
    ev = ev.sort_values("ts_ns", kind="stable")
    before = ev[ev["ts_ns"] < t0]
    inside = ev[(ev["ts_ns"] >= t0) & (ev["ts_ns"] <= t1)]
    xs = list((inside["ts_ns"].to_numpy() - t0) / per)
    ys = list(inside["in_use_bytes"].to_numpy() / 2**20)
    if len(before):
        xs, ys = [0.0, *xs], [before["in_use_bytes"].iloc[-1] / 2**20, *ys]
    if xs and not len(inside):
        ax.text(0.5, 0.5, f"no allocation or free in this window: {ys[0]:.3g} MiB held throughout",
                ha="center", va="bottom", transform=ax.transAxes, fontsize=7, color="0.35")
    if xs:
        xs.append((t1 - t0) / per)
        ys.append(ys[-1])
        ax.step(xs, ys, where="post", color="black", lw=1, gid="memory")
        ax.set_ylim(0, max(ys) * 1.15 or 1.0)
    else:
        say_empty(ax, "memory events in this window")
    ax.set_ylabel("in use (MiB)", fontsize=8)
    ax.grid(axis="y", lw=0.3)


def _dark(rgb: Any) -> bool:
    """Whether white text reads better than black on ``rgb`` (its relative luminance below 0.4)."""
    r, g, b = rgb[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.4


def _labels(fig: Any, ax: Any, df: pd.DataFrame, x: Any, w: Any, y: list, span: float, min_pct: float,
            faces: list) -> None:
    """Names the bars whose name fits inside them, measured in display coordinates after layout:
    along the bar where it fits, else across it (rotated) where the lane is tall enough."""
    renderer = fig.canvas.get_renderer() if hasattr(fig.canvas, "get_renderer") else fig._get_renderer()
    x_px = abs(ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0])
    lane_px = 0.7 * abs(ax.transData.transform((0, 1))[1] - ax.transData.transform((0, 0))[1])
    from matplotlib.font_manager import FontProperties
    prop = FontProperties(size=6.5)
    sizes: dict = {}
    for name, xi, wi, yi, face in zip(df["layer"], x, w, y, faces):
        if 100 * wi / span < min_pct:
            continue
        text = short_name(name, 24)
        if text not in sizes:
            sizes[text] = renderer.get_text_width_height_descent(text, prop, ismath=False)[:2]
        tw, th = sizes[text]
        if tw + 4 <= wi * x_px and th + 2 <= lane_px:
            rotation = 0
        elif th + 2 <= wi * x_px and tw + 4 <= lane_px:
            rotation = 90
        else:
            continue
        ax.text(xi + wi / 2, yi, text, ha="center", va="center", rotation=rotation, fontproperties=prop,
                clip_on=True, gid="label", color="white" if _dark(face) else "black",
                bbox=dict(boxstyle="square,pad=0.1", fc=face, ec="none"))
