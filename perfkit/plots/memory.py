"""Device memory over time from a TrackingAllocator's events (guide 1.6): phases (build, context
creation, inference), stacked areas per tag, the builder's prediction, the peak, the running layer
as bands beneath. What the events say (phases, levels, blocks) is computed in memory_data.py, the
largest blocks in memory_blocks.py; this module draws.

A million events plot in well under two seconds: the levels are computed once for all events, and
only the rows that hold each pixel column's first, last, highest and lowest level of every band are
drawn (so no peak is lost)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import flag, number
from ._axes import (TimeAxis, at_resolution, bytes_unit, check_ax, drop_colliding_ticks, figure_and_axes, human_bytes,
                    human_ms, say_empty, title_parts)
from .memory_blocks import top_allocations  # noqa: F401 - public here too
from .memory_data import (DEFAULT_PHASES, PHASES, TAG_ORDER, MemoryData, events_arg, layer_times_arg,  # noqa: F401
                          memory_phases, memory_time_range, phases_arg, t0_arg, tags_arg, window_arg)
from .memory_owners import context_lifetimes, headroom
from .readouts import memory_readout

TAG_COLORS = {"weights": "#4c72b0", "activations": "#55a868", "workspace": "#dd8452", "io": "#8172b3",
              "user": "#937860", "held before the frame": "#c8c8c8"}
BUCKETS = 2000          # pixel columns (about two per pixel of a wide figure)
BAND = 0.09             # share of the height under zero that holds the layer bands


def plot_memory(memory_events: pd.DataFrame, ax: Any = None, by_tag: bool = True, phases: Any = DEFAULT_PHASES,
                window_ms: Any = None, tags: Any = None, predicted_bytes: Any = None, layer_times: Any = None,
                t0_ns: Any = None) -> Any:
    """Device memory held through a TrackingAllocator over time, as areas stacked by tag.

    ``phases`` (any of 'build', 'context creation', 'inference'; by default the last two) choose the
    span shown, and whether the builder's own blocks count; ``window_ms=(start, end)`` narrows it
    (x is ms since ``t0_ns``, by default the start of those phases; pass the frame's first ``ts_ns``
    to keep a window in place while the phases change). ``tags`` keeps those tags only; ``by_tag=False``
    draws one area for them all.
    Levels held before the span are carried in. ``predicted_bytes`` (e.g. ``run.meta
    ['predicted_device_memory_bytes']``) is drawn as a line; the peak of the span is marked and named;
    the running layer is drawn as thin bands beneath (from ``layer_times``, else from the events'
    ``layer`` column)."""
    what = "plot_memory"
    ev = events_arg(memory_events, what)
    flag(by_tag, f"{what}: by_tag")
    phases = phases_arg(phases, what)
    window = window_arg(window_ms, what)
    tags = tags_arg(tags, what)
    if predicted_bytes is not None:
        predicted_bytes = number(predicted_bytes, f"{what}: predicted_bytes (bytes the builder predicted, or None)", 0)
    lt = layer_times_arg(layer_times, what)
    t0 = t0_arg(t0_ns, what)
    check_ax(ax, what)
    return draw_memory(MemoryData(ev, lt), ax, by_tag, phases, window, tags, predicted_bytes, t0)


def draw_memory(data: MemoryData, ax: Any, by_tag: bool, phases: tuple, window: Any, tags: Any, predicted: Any,
                t0: Any) -> Any:
    """plot_memory on checked arguments and a MemoryData (which the MemoryExplorer keeps between redraws)."""
    fig, ax = figure_and_axes(ax, (11, 4.2))
    ev = data.ev
    span = data.span_ns(phases)
    t0_given = t0 is not None
    t0 = t0 if t0_given else span[0] if span is not None else data.first_ns()
    if span is not None and window is not None:
        span = (max(span[0], t0 + int(window[0] * 1e6)), min(span[1], t0 + int(window[1] * 1e6)))
        span = span if span[1] > span[0] else None
    if tags is not None and set(data.tags) <= set(tags):
        tags = None                                   # every tag chosen: the same as no filter (keeps "held before")
    levels, names = data.levels("build" in phases, tags, by_tag)
    ax.set_title(_title(data.frame, data.lt, phases), fontsize=9)
    if span is None or not names:
        say_empty(ax, "memory events" + (" (nothing was allocated or freed in this frame)" if ev.empty else
                                         f" in {' + '.join(phases)}"
                                         + (f" for tags {', '.join(tags)}" if tags else "")
                                         + (f" within {window[0]:g}-{window[1]:g} ms" if window else "")))
        return fig
    xa = _draw(ax, data, levels, names, span, t0, predicted, phases)
    cut = any(p.get_gid() == "idle_gap" for p in ax.patches)
    notes = (["idle gaps cut short"] if cut else []) + \
        (["each phase at least 12% wide (the scale changes at the dotted lines)"] if xa.breaks else [])
    ax.set_xlabel(f"time (ms) since {_origin(t0, t0_given, data.first_ns())}"      # notes on a line of their own:
                  + ("\n" + "; ".join(notes) if notes else ""))                   # one long line ran off the figure
    if cut or xa.breaks:
        drop_colliding_ticks(ax)
    return fig


def _origin(t0: int, given: bool, first: int) -> str:
    """What 0 ms on the x axis is: the start of the phases shown, the first event, or t0 against it."""
    if not given:
        return "the start of the phases shown"
    if t0 == first:
        return "the first event"
    return f"{human_ms(abs(first - t0) / 1e6)} {'before' if t0 < first else 'after'} the first event"


def _downsample(x: np.ndarray, tops: np.ndarray, buckets: int) -> np.ndarray:
    """Rows to draw: in each of ``buckets`` columns of x, the first and last row and the rows of the
    highest and lowest value of every column of ``tops`` (so every peak and trough stays)."""
    n = len(x)
    if n <= 4 * buckets:
        return np.arange(n)
    b = np.minimum(((x - x[0]) / ((x[-1] - x[0]) or 1.0) * buckets).astype(np.int64), buckets - 1)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    counts = np.diff(np.r_[starts, n])
    keep = [starts, starts + counts - 1]
    for j in range(tops.shape[1]):
        v = tops[:, j]
        for reduce in (np.maximum, np.minimum):
            hit = np.flatnonzero(v == np.repeat(reduce.reduceat(v, starts), counts))
            hb = b[hit]
            keep.append(hit[np.r_[True, hb[1:] != hb[:-1]]])
    return np.unique(np.concatenate(keep))


def _draw(ax: Any, data: MemoryData, levels: np.ndarray, names: list, span: tuple, t0: int, predicted: Any,
          phases: tuple) -> TimeAxis:
    ev, ts, lt, phase = data.ev, data.ts, data.lt, data.phase
    i0, i1 = int(np.searchsorted(ts, span[0], "left")), int(np.searchsorted(ts, span[1], "right"))
    tops = np.cumsum(levels[i0:i1 + 1], axis=1)          # row 0: held before the span; then one per event
    rows = _downsample(ts[i0:i1].astype(np.float64), tops[1:], BUCKETS)
    busy = lt[["start_ns", "end_ns"]].to_numpy() if lt is not None and len(lt) and "inference" in phases else None
    xa = TimeAxis(t0, span, ts[i0:i1], busy, breaks=list(_phase_starts(ts, phase, phases, span, lt).values())[1:])
    # a little after the span (3% of the axis), so that its last step shows
    tail = max(0.03 * float(xa(span[1]) - xa(span[0])) / xa.slope() * 1e6, 1.0)
    t = np.r_[span[0], ts[i0:i1][rows], span[1] + tail]
    x = xa(t)
    top = np.vstack([tops[:1], tops[1:][rows], tops[-1:]])
    unit, per = bytes_unit(max(float(top.max()), float(predicted or 0), 1.0))
    bottom = np.zeros(len(x))
    for j, name in enumerate(names):
        if not (top[:, j] > bottom).any():           # a tag that holds nothing in the span: no area, no legend row
            continue
        ax.fill_between(x, bottom / per, top[:, j] / per, step="post", lw=0, color=TAG_COLORS.get(name, f"C{j}"),
                        alpha=0.85, label=name, gid=f"tag:{name}")
        bottom = top[:, j]
    ax.step(x, top[:, -1] / per, where="post", color="black", lw=0.8, gid="total", label="total held")
    memory_readout(ax, x, (t - t0) / 1e6, top[:, -1], unit, per)
    ax.set_xlim(x[0], x[-1] if x[-1] > x[0] else x[0] + 1e-3)
    peak = int(np.argmax(top[:, -1]))
    event = i0 + int(rows[peak - 1]) if 0 < peak <= len(rows) else None
    # the time to the resolution the axis has where the peak is: a cut axis stretches short phases, so a peak
    # 0.4 ms into a 0.5 ms phase of a 17 s span reads '0.4 ms', not '0 ms'
    local = float(xa(t[peak] + 1e3) - xa(t[peak])) / 1e-3 or 1.0          # x units per ms there
    when = "throughout" if (top[:, -1] == top[0, -1]).all() else "when the span opens" if peak == 0 else \
        f"at {at_resolution((t[peak] - t0) / 1e6, float(x[-1] - x[0]) / local)} ms"
    _mark_peak(ax, ev, x[peak], float(top[peak, -1]), event, per, when)
    if predicted is not None:
        ax.axhline(predicted / per, color="#c0392b", ls="--", lw=1.2, gid="predicted",
                   label=f"builder's prediction {human_bytes(predicted)} (engine + one context)")
    ymax = max(float(top.max()), float(predicted or 0)) / per * 1.25 / (1 - headroom(ev, span)) or 1.0
    ax.set_ylim(-BAND * ymax, ymax)
    _phase_marks(ax, ts, phase, phases, span, xa, lt)
    _layer_bands(ax, data, span, xa)
    context_lifetimes(ax, ev, span, xa, t0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=7)
    xa.decorate(ax, span[1] + tail)
    from matplotlib.ticker import FuncFormatter
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "" if v < 0 else f"{v:g}"))
    ax.set_ylabel(f"held ({unit})")
    ax.grid(axis="y", lw=0.3)
    return xa


def _mark_peak(ax: Any, ev: pd.DataFrame, x: float, y: float, event: Any, per: float, when: str) -> None:
    """A marker on the highest level shown, with the bytes, ``when`` and, where known, the layer then
    running."""
    layer = ev["layer"].iloc[event] if event is not None else ""
    layer = "" if pd.isna(layer) else str(layer)
    text = (f"{human_bytes(y)} held throughout" if when == "throughout" else f"peak {human_bytes(y)} {when}") + (f"\nduring {layer}" if layer else "")
    ax.plot([x], [y / per], marker="v", color="black", ms=7, ls="none", gid="peak", label="_peak")
    lo, hi = ax.get_xlim()
    right = x > lo + 0.7 * (hi - lo)
    ax.annotate(text, (x, y / per), xytext=(-8 if right else 8, 6), textcoords="offset points",
                ha="right" if right else "left", va="bottom",
                fontsize=7, gid="peak_label",
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.6", lw=0.5, alpha=0.9))


def _phase_marks(ax: Any, ts: np.ndarray, phase: np.ndarray, phases: tuple, span: tuple, xa: TimeAxis,
                 lt: Any) -> None:
    """A dotted line and the phase's name where each shown phase begins (when more than one shows:
    at its first event, or for inference at its first layer when that comes first); a legend row
    for each phase without an allocation or free."""
    starts = _phase_starts(ts, phase, phases, span, lt)
    i0, i1 = np.searchsorted(ts, span[0], "left"), np.searchsorted(ts, span[1], "right")
    quiet = [p for p in phases if not (phase[i0:i1] == PHASES.index(p)).any()]
    if quiet:
        ax.plot([], [], " ", label=f"no allocation or free in {' or '.join(quiet)}", gid="quiet_phase")
    if len(starts) < 2:
        return
    lo, hi = ax.get_xlim()
    last = -np.inf
    for k, (p, t) in enumerate(starts.items()):
        x = float(xa(t))
        ax.axvline(x, color="0.4", lw=0.7, ls=":", gid="phase")
        drop = 10 * k if x - last < 0.15 * (hi - lo) else 0           # close names go one under the other
        ax.annotate(p, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -2 - drop), textcoords="offset points",
                    fontsize=7, color="0.3", va="top", gid="phase_label")
        last = x


def _phase_starts(ts: np.ndarray, phase: np.ndarray, phases: tuple, span: tuple, lt: Any) -> dict:
    """{phase: ns} where each shown phase begins within the span (its first event, or for inference
    its first layer when that comes first), in time order."""
    i0, i1 = np.searchsorted(ts, span[0], "left"), np.searchsorted(ts, span[1], "right")
    ts, phase = ts[i0:i1], phase[i0:i1]
    starts = {p: float(ts[np.argmax(phase == PHASES.index(p))]) for p in phases if (phase == PHASES.index(p)).any()}
    if lt is not None and len(lt) and "inference" in phases and span[0] <= lt["start_ns"].min() <= span[1]:
        starts["inference"] = min(starts.get("inference", np.inf), float(lt["start_ns"].min()))
    return dict(sorted(starts.items(), key=lambda item: item[1]))


def _layer_bands(ax: Any, data: MemoryData, span: tuple, xa: TimeAxis) -> None:
    """The running layer as thin bands under the zero line: from the layer times when given, else
    from runs of events that share a layer."""
    from .layer_style import layer_colors
    lt = data.lt
    if lt is not None and len(lt):
        b = lt[(lt["end_ns"] >= span[0]) & (lt["start_ns"] <= span[1])]
        starts, ends, names = b["start_ns"].to_numpy(), b["end_ns"].to_numpy(), b["layer"].to_numpy()
    else:
        i0, i1 = np.searchsorted(data.ts, span[0], "left"), np.searchsorted(data.ts, span[1], "right")
        starts, ends, names = data.layer_runs(int(i0), int(i1))
    if not len(starts):
        return
    colors = layer_colors(pd.unique(names))
    starts, ends, names = _fewer_bands(starts, ends, names, span)
    x0, x1 = xa(starts), xa(ends)
    width = float(xa(span[1]) - xa(span[0])) * 2e-3
    xr = list(zip(x0, np.maximum(x1 - x0, width)))
    lo, hi = ax.get_ylim()
    ax.broken_barh(xr, (lo * 0.85, -lo * 0.7), facecolors=[colors[n] for n in names], gid="layer_bands")
    ax.annotate("layers", (0, lo * 0.5), xycoords=("axes fraction", "data"), xytext=(-3, 0),
                textcoords="offset points", ha="right", va="center", fontsize=7, color="0.3")


def _fewer_bands(starts: np.ndarray, ends: np.ndarray, names: np.ndarray, span: tuple) -> tuple:
    """At most one band per pixel column: where more layers ran than there are columns, each column
    shows the layer that ran longest in it, over the span of all its layers."""
    if len(starts) <= BUCKETS:
        return starts, ends, names
    b = np.minimum(((starts - span[0]) / ((span[1] - span[0]) or 1) * BUCKETS).astype(np.int64), BUCKETS - 1)
    first = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    order = np.lexsort((starts - ends, b))                  # per column, the longest first
    ob = b[order]
    longest = order[np.r_[True, ob[1:] != ob[:-1]]]
    return starts[first], np.maximum.reduceat(ends, first), names[longest]


def _title(ev: pd.DataFrame, lt: Any, phases: tuple) -> str:
    parts = title_parts(ev, lt)
    return "device memory over time" + (f" — {' · '.join(parts)}" if parts else "") + f" — {' + '.join(phases)}"
