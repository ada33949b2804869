"""Device memory over time from a TrackingAllocator's events (guide 1.6): phases (build, context
creation, inference), stacked areas per tag, the builder's prediction, the peak, the running layer
as bands beneath; and the largest blocks of a window for the explorer's table.

A million events plot in well under two seconds: the levels are computed once for all events, and
only the rows that hold each pixel column's first, last, highest and lowest level of every band are
drawn (so no peak is lost)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import flag, frame as check_frame, integer, number, one_of, positive_int
from ..errors import ArgumentError
from ._axes import TimeAxis, bytes_unit, check_ax, figure_and_axes, human_bytes, human_ms, say_empty, title_parts

PHASES = ("build", "context creation", "inference")
DEFAULT_PHASES = ("context creation", "inference")
COLUMNS = ("ts_ns", "action", "size_bytes", "tag", "owner", "layer", "in_use_bytes")
TAG_ORDER = ("weights", "activations", "workspace", "io", "user")
TAG_COLORS = {"weights": "#4c72b0", "activations": "#55a868", "workspace": "#dd8452", "io": "#8172b3",
              "user": "#937860", "held before the frame": "#c8c8c8"}
BEFORE = "held before the frame"
BUCKETS = 2000          # pixel columns (about two per pixel of a wide figure)
BAND = 0.09             # share of the height under zero that holds the layer bands


def _events(memory_events: Any, what: str) -> pd.DataFrame:
    return check_frame(memory_events, f"{what}: memory_events (a memory_events frame: TrackingAllocator.events "
                                      "or run.memory)", COLUMNS)


def _layer_times(layer_times: Any, what: str) -> Any:
    if layer_times is None:
        return None
    return check_frame(layer_times, f"{what}: layer_times (run.layers, or None)", ("start_ns", "end_ns", "layer"))


def _phases_arg(phases: Any, what: str) -> tuple:
    items = [phases] if isinstance(phases, str) else phases
    if not isinstance(items, (list, tuple, set, frozenset)) or not items:
        raise ArgumentError(f"{what}: phases must be a non-empty list of {', '.join(map(repr, PHASES))}, "
                            f"not {phases!r}")
    return tuple(p for p in PHASES if p in {one_of(p, PHASES, f"{what}: phases item") for p in items})


def _window_arg(window_ms: Any, what: str) -> Any:
    if window_ms is None:
        return None
    if not isinstance(window_ms, (list, tuple)) or len(window_ms) != 2:
        raise ArgumentError(f"{what}: window_ms must be (start_ms, end_ms) or None, not {window_ms!r}")
    lo = number(window_ms[0], f"{what}: window_ms start")
    hi = number(window_ms[1], f"{what}: window_ms end")
    if hi <= lo:
        raise ArgumentError(f"{what}: window_ms ends at {hi:g} ms, not after its start {lo:g} ms; give (start, end)")
    return lo, hi


def _t0(ev: pd.DataFrame, t0_ns: Any, what: str) -> int:
    if t0_ns is None:
        return int(ev["ts_ns"].min()) if len(ev) else 0
    return integer(t0_ns, f"{what}: t0_ns (the perf_counter_ns that is 0 ms on the x axis, or None)")


def _sorted(ev: pd.DataFrame) -> pd.DataFrame:
    return ev if ev["ts_ns"].is_monotonic_increasing else ev.sort_values("ts_ns", kind="stable")


def memory_phases(memory_events: pd.DataFrame, layer_times: Any = None) -> pd.Series:
    """The phase of each event, indexed like the frame (a categorical of :data:`PHASES`): ``'build'``
    (owner ``builder``), ``'inference'`` (an event with its running layer set, or any event from the
    first inference on: the first such event, or the first layer start of ``layer_times``) or
    ``'context creation'`` (the engine's and contexts' allocations before that)."""
    ev = _events(memory_events, "memory_phases")
    codes = _phase_codes(ev, _layer_times(layer_times, "memory_phases"))
    return pd.Series(pd.Categorical.from_codes(codes, categories=PHASES), index=ev.index, name="phase")


def _phase_codes(ev: pd.DataFrame, lt: Any) -> np.ndarray:
    """Index into PHASES of each event's phase."""
    ts = ev["ts_ns"].to_numpy()
    with_layer = (ev["layer"].fillna("") != "").to_numpy()
    firsts = [ts[with_layer].min()] if with_layer.any() else []
    if lt is not None and len(lt):
        firsts.append(lt["start_ns"].min())
    inference = with_layer | (ts >= min(firsts)) if firsts else with_layer
    build = (ev["owner"].fillna("") == "builder").to_numpy()
    return np.where(build, 0, np.where(inference, 2, 1)).astype(np.int8)


def memory_time_range(memory_events: pd.DataFrame, phases: Any = DEFAULT_PHASES, layer_times: Any = None,
                      t0_ns: Any = None) -> tuple:
    """(start_ms, end_ms): the span that :func:`plot_memory` shows for ``phases`` (x in ms since ``t0_ns``,
    by default the start of the span itself): from the first to the last event of those phases, and over the
    layer times too when ``'inference'`` is one of them. (0.0, 0.0) when nothing falls in those phases."""
    what = "memory_time_range"
    ev = _events(memory_events, what)
    phases = _phases_arg(phases, what)
    lt = _layer_times(layer_times, what)
    span = _span_ns(ev, _phase_codes(ev, lt), phases, lt)
    if span is None:
        return (0.0, 0.0)
    t0 = span[0] if t0_ns is None else _t0(ev, t0_ns, what)
    return ((span[0] - t0) / 1e6, (span[1] - t0) / 1e6)


def _span_ns(ev: pd.DataFrame, phase: np.ndarray, phases: tuple, lt: Any) -> Any:
    ts = ev["ts_ns"].to_numpy()[np.isin(phase, [PHASES.index(p) for p in phases])]
    ends = [ts.min(), ts.max()] if len(ts) else []
    if lt is not None and len(lt) and "inference" in phases:
        ends += [lt["start_ns"].min(), lt["end_ns"].max()]
    return (int(min(ends)), int(max(ends))) if ends else None


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
    ev = _events(memory_events, what)
    flag(by_tag, f"{what}: by_tag")
    phases = _phases_arg(phases, what)
    window = _window_arg(window_ms, what)
    tags = _tags_arg(tags, what)
    if predicted_bytes is not None:
        predicted_bytes = number(predicted_bytes, f"{what}: predicted_bytes (bytes the builder predicted, or None)", 0)
    lt = _layer_times(layer_times, what)
    check_ax(ax, what)
    fig, ax = figure_and_axes(ax, (11, 4.2))
    ev = _sorted(ev)
    phase = _phase_codes(ev, lt)
    span = _span_ns(ev, phase, phases, lt)
    t0 = _t0(ev, t0_ns, what) if t0_ns is not None or span is None else span[0]
    if span is not None and window is not None:
        span = (max(span[0], t0 + int(window[0] * 1e6)), min(span[1], t0 + int(window[1] * 1e6)))
        span = span if span[1] > span[0] else None
    if tags is not None and set(ev["tag"].dropna().unique()) <= set(tags):
        tags = None                                   # every tag chosen: the same as no filter (keeps "held before")
    counted = (phase != 0) | ("build" in phases)
    levels, names = _levels(ev, counted, tags, by_tag)
    ax.set_title(_title(memory_events, lt, phases), fontsize=9)
    if span is None or not names:
        say_empty(ax, "memory events" + (" (nothing was allocated or freed in this frame)" if ev.empty else
                                         f" in {' + '.join(phases)}"
                                         + (f" for tags {', '.join(tags)}" if tags else "")
                                         + (f" within {window[0]:g}-{window[1]:g} ms" if window else "")))
        return fig
    xa = _draw(ax, ev, levels, names, span, t0, predicted_bytes, lt, phase, phases)
    cut = any(p.get_gid() == "idle_gap" for p in ax.patches)
    origin = "the start of the phases shown" if t0_ns is None else \
        "the first event" if t0_ns == int(ev["ts_ns"].min()) else "t0_ns"
    ax.set_xlabel(f"time (ms) since {origin}"
                  + ("; idle gaps cut short" if cut else "")
                  + ("; each phase at least 12% wide (the scale changes at the dotted lines)" if xa.breaks else ""))
    return fig


def _tags_arg(tags: Any, what: str) -> Any:
    if tags is None:
        return None
    items = [tags] if isinstance(tags, str) else tags
    if not isinstance(items, (list, tuple, set, frozenset)) or not items or \
            not all(isinstance(t, str) and t for t in items):
        raise ArgumentError(f"{what}: tags must be None (every tag) or a non-empty list of tag names such as "
                            f"['weights', 'activations'], not {tags!r}")
    return sorted(items)


def _levels(ev: pd.DataFrame, counted: np.ndarray, tags: Any, by_tag: bool) -> tuple:
    """Bytes held per band (int64, one row before the first event and one after each event, a column
    per band) and the band names, bottom first. A frame that starts while blocks are live (run.memory)
    gets a band for what was held before it, so that the top of the stack is the allocator's
    ``in_use_bytes``."""
    action = ev["action"].to_numpy()
    delta = ev["size_bytes"].to_numpy() * ((action == "alloc").astype(np.int64) - (action == "free"))
    codes, uniq = pd.factorize(ev["tag"].fillna(""))
    names = sorted(uniq, key=lambda t: (TAG_ORDER.index(t) if t in TAG_ORDER else len(TAG_ORDER), t))
    keep = [t for t in names if tags is None or t in tags]
    col = {t: i for i, t in enumerate(uniq)}
    levels = np.zeros((len(ev) + 1, len(keep)), dtype=np.int64)
    rows = np.flatnonzero(counted)
    for j, t in enumerate(keep):
        mine = rows[codes[rows] == col[t]]
        levels[mine + 1, j] = delta[mine]
    levels = np.cumsum(levels, axis=0)
    levels -= np.minimum(levels.min(axis=0), 0)     # a tag freed below zero held that much before the frame
    if tags is None and len(ev) and counted.all():
        before = int(ev["in_use_bytes"].iloc[0] - delta[0]) - int(levels[0].sum())
        if before > 0:
            levels, keep = np.column_stack([np.full(len(levels), before, np.int64), levels]), [BEFORE, *keep]
    if not by_tag and keep:
        levels, keep = levels.sum(axis=1, keepdims=True), ["all tags" if tags is None else " + ".join(keep)]
    return levels, keep


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


def _draw(ax: Any, ev: pd.DataFrame, levels: np.ndarray, names: list, span: tuple, t0: int, predicted: Any,
          lt: Any, phase: np.ndarray, phases: tuple) -> TimeAxis:
    ts = ev["ts_ns"].to_numpy()
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
    ax.set_xlim(x[0], x[-1] if x[-1] > x[0] else x[0] + 1e-3)
    peak = int(np.argmax(top[:, -1]))
    event = i0 + int(rows[peak - 1]) if 0 < peak <= len(rows) else None
    when = "throughout" if (top[:, -1] == top[0, -1]).all() else "when the span opens" if peak == 0 else \
        f"at {human_ms((t[peak] - t0) / 1e6)}"
    _mark_peak(ax, ev, x[peak], float(top[peak, -1]), event, per, when)
    if predicted is not None:
        ax.axhline(predicted / per, color="#c0392b", ls="--", lw=1.2, gid="predicted",
                   label=f"builder's prediction {human_bytes(predicted)}")
    ymax = max(float(top.max()), float(predicted or 0)) / per * 1.25 or 1.0
    ax.set_ylim(-BAND * ymax, ymax)
    _phase_marks(ax, ts, phase, phases, span, xa, lt)
    _layer_bands(ax, ev, lt, span, xa)
    xa.decorate(ax, span[1] + tail)
    from matplotlib.ticker import FuncFormatter
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "" if v < 0 else f"{v:g}"))
    ax.set_ylabel(f"held ({unit})")
    ax.grid(axis="y", lw=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize=7)
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


def _layer_bands(ax: Any, ev: pd.DataFrame, lt: Any, span: tuple, xa: TimeAxis) -> None:
    """The running layer as thin bands under the zero line: from the layer times when given, else
    from runs of events that share a layer."""
    from .layer_timeline import layer_colors
    if lt is not None and len(lt):
        b = lt[(lt["end_ns"] >= span[0]) & (lt["start_ns"] <= span[1])]
        starts, ends, names = b["start_ns"].to_numpy(), b["end_ns"].to_numpy(), b["layer"].to_numpy()
    else:
        ts = ev["ts_ns"].to_numpy()
        i0, i1 = np.searchsorted(ts, span[0], "left"), np.searchsorted(ts, span[1], "right")
        layer, ts = ev["layer"].iloc[i0:i1].fillna("").to_numpy(dtype=object), ts[i0:i1]
        first = np.flatnonzero(np.r_[True, layer[1:] != layer[:-1]])        # runs of one running layer
        last = np.r_[first[1:] - 1, len(layer) - 1] if len(layer) else first
        named = layer[first] != ""
        starts, ends, names = ts[first[named]], ts[last[named]], layer[first[named]]
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


def top_allocations(memory_events: pd.DataFrame, window_ms: Any = None, n: int = 10, t0_ns: Any = None,
                    phases: Any = None) -> pd.DataFrame:
    """The ``n`` largest blocks live at any time in ``window_ms=(start, end)`` (None: the whole frame),
    largest first: when each was allocated and freed (ms since ``t0_ns``, by default the first event
    of ``phases`` as in :func:`plot_memory`; free_ms NaN: still held at the end of the frame), its
    size, tag, owner, running layer and phase. ``phases`` (None: all) keeps the blocks allocated in
    those phases."""
    what = "top_allocations"
    ev = _events(memory_events, what)
    check_frame(ev, f"{what}: memory_events", ("ptr", "requested_bytes"))
    window = _window_arg(window_ms, what)
    n = positive_int(n, f"{what}: n (how many blocks)")
    phases = PHASES if phases is None else _phases_arg(phases, what)
    ev = _sorted(ev).assign(phase=lambda d: memory_phases(d), pos=lambda d: np.arange(len(d)))
    t0 = _t0(ev[ev["phase"].isin(phases)], t0_ns, what)
    allocs = ev[ev["action"] == "alloc"]
    frees = ev.loc[ev["action"] == "free", ["ptr", "pos", "ts_ns"]].rename(columns={"ts_ns": "free_ns",
                                                                                   "pos": "free_pos"})
    pairs = pd.merge_asof(allocs, frees, left_on="pos", right_on="free_pos", by="ptr", direction="forward",
                          allow_exact_matches=False)
    out = pd.DataFrame({"alloc_ms": (pairs["ts_ns"] - t0) / 1e6, "free_ms": (pairs["free_ns"] - t0) / 1e6})
    out["lifetime_ms"] = out["free_ms"] - out["alloc_ms"]
    for c in ("size_bytes", "requested_bytes", "tag", "owner", "layer", "phase"):
        out[c] = pairs[c].to_numpy()
    keep = out["phase"].isin(phases)
    if window is not None:
        keep &= (out["alloc_ms"] <= window[1]) & (out["free_ms"].isna() | (out["free_ms"] >= window[0]))
    out = out[keep].sort_values(["size_bytes", "alloc_ms"], ascending=[False, True], kind="stable")
    out = out.head(n).reset_index(drop=True)
    out.insert(4, "size", pd.Series([human_bytes(b) for b in out["size_bytes"]], dtype="string"))
    return out
