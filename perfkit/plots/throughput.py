"""Figures of throughput under load: throughput and latency against streams and threads (the
``throughput`` frame), the queries of a throughput run on one lane per stream (the ``queries`` frame),
and batching latency and throughput against the maximum delay T (the ``batching_simulation`` frame)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame
from ..errors import ArgumentError
from ._axes import check_ax, figure_and_axes, say_empty, title_parts, unit_of

SATURATED = 0.95        # a configuration within 5% of the best throughput counts as saturated


def _count(v: float, _: Any = None) -> str:
    return f"{v / 1e3:g}k" if abs(v) >= 1e4 else f"{v:g}"


def plot_throughput(frame: pd.DataFrame, ax: Any = None) -> Any:
    """Throughput (left) and median and p99 latency (right) against the number of streams, one line per
    thread count, with the 95% interval of the median throughput as error bars where the sweep has one;
    the first configuration within 5% of the best throughput is ringed ("saturates"). ``ax``: a pair of
    Axes (or None for a new figure)."""
    check_frame(frame, "plot_throughput: frame", ("streams", "threads", "throughput_per_s", "latency_median_ms",
                                                   "latency_p99_ms"))
    if ax is not None:
        if not (isinstance(ax, (list, tuple, np.ndarray)) and len(ax) == 2):
            raise ArgumentError("plot_throughput: ax must be a pair of matplotlib Axes (throughput, latency) or None")
        for a in ax:
            check_ax(a, "plot_throughput")
        fig, axes = ax[0].figure, list(ax)
    else:
        fig, axes = figure_and_axes(None, (11, 4.2), ncols=2)
    left, right = axes
    if not len(frame):
        say_empty(left, "throughput rows")
        return fig
    same = bool((frame["threads"] == frame["streams"]).all())
    groups = [("one thread per stream", frame)] if same else \
        [(f"{m} thread{'s' * (m > 1)}", g) for m, g in frame.groupby("threads")]
    unit, per = unit_of("ms", frame["latency_p99_ms"])
    for i, (label, g) in enumerate(groups):
        g = g.sort_values("streams")
        color = f"C{i}"
        y = g["throughput_per_s"].to_numpy(float)
        err = None
        if {"throughput_ci_low_per_s", "throughput_ci_high_per_s"} <= set(g.columns) and \
                g["throughput_ci_low_per_s"].notna().all():
            err = np.vstack([y - g["throughput_ci_low_per_s"], g["throughput_ci_high_per_s"] - y]).clip(0)
        left.errorbar(g["streams"], y, yerr=err, marker="o", ms=5, capsize=3, color=color, label=label,
                      gid="throughput")
        right.plot(g["streams"], g["latency_median_ms"] / per, "-o", ms=4, color=color, label=f"median, {label}",
                   gid="latency_median")
        right.plot(g["streams"], g["latency_p99_ms"] / per, ":^", ms=4, color=color, label=f"p99, {label}",
                   gid="latency_p99")
    best = frame["throughput_per_s"].max()
    sat = frame[frame["throughput_per_s"] >= SATURATED * best].sort_values(["streams", "threads"]).iloc[0]
    left.plot([sat["streams"]], [sat["throughput_per_s"]], "o", ms=14, mfc="none", mec="crimson", mew=1.5,
              gid="saturation", label=f"saturates: {int(sat['streams'])} stream(s), {int(sat['threads'])} thread(s) "
                                      f"(within {100 - 100 * SATURATED:.0f}% of the best)")
    streams = sorted(frame["streams"].unique())
    for a in (left, right):
        a.set_xscale("log", base=2)
        a.set_xticks(streams, [str(s) for s in streams])
        a.minorticks_off()
        a.set_xlabel("streams (execution contexts, one stream each)")
        a.grid(True, alpha=0.3)
    from matplotlib.ticker import FuncFormatter
    left.yaxis.set_major_formatter(FuncFormatter(_count))
    left.set_ylim(bottom=0)
    right.set_ylim(bottom=0)
    left.set_ylabel("throughput (samples/s)")
    right.set_ylabel(f"latency per query ({unit})")
    left.legend(fontsize=8, loc="lower right")
    right.legend(fontsize=8, loc="upper left")
    name = " · ".join(title_parts(frame))
    left.set_title(f"throughput vs streams — {name}", fontsize=10)
    right.set_title("latency per query (H2D + compute + D2H)" if frame.attrs.get("include_transfers", True)
                    else "latency per query (compute only)", fontsize=10)
    return fig


def plot_stream_timeline(queries: pd.DataFrame, ax: Any = None, max_queries: int = 400) -> Any:
    """The queries of a throughput run, one lane per stream, each a bar from submission to observed
    completion, coloured by the worker thread that owns the stream: overlapping bars on different lanes
    are inferences running at once. Draws the first ``max_queries`` queries (a readable window)."""
    check_frame(queries, "plot_stream_timeline: queries", ("stream", "enqueue_start_ns", "end_ns"))
    from ..arguments import positive_int
    max_queries = positive_int(max_queries, "plot_stream_timeline: max_queries")
    check_ax(ax, "plot_stream_timeline")
    streams = sorted(queries["stream"].unique()) if len(queries) else []
    fig, ax = figure_and_axes(ax, (11, 1.2 + 0.45 * max(1, len(streams))))
    if not len(queries):
        say_empty(ax, "queries")
        return fig
    q = queries.sort_values("enqueue_start_ns").head(max_queries)
    t0 = int(q["enqueue_start_ns"].min())
    span_ms = (int(q["end_ns"].max()) - t0) / 1e6
    unit, per = unit_of("ms", [span_ms])
    threads = q.attrs.get("thread_of_stream") or queries.attrs.get("thread_of_stream")
    lanes = {s: i for i, s in enumerate(streams)}
    for s, g in q.groupby("stream"):
        start = (g["enqueue_start_ns"].to_numpy(np.int64) - t0) / 1e6 / per
        width = (g["end_ns"].to_numpy(np.int64) - g["enqueue_start_ns"].to_numpy(np.int64)) / 1e6 / per
        t = threads[int(s)] if threads and int(s) < len(threads) else int(s)
        ax.broken_barh(list(zip(start, width)), (lanes[s] - 0.38, 0.76), facecolors=f"C{t % 10}",
                       edgecolors="white", linewidth=0.5, gid="query")
    ax.set_yticks(range(len(streams)), [f"stream {s}" + (f" · thread {threads[int(s)]}" if threads and
                                                          int(s) < len(threads) else "") for s in streams])
    ax.set_ylim(len(streams) - 0.5, -0.5)
    ax.set_xlim(0, span_ms / per)
    ax.set_xlabel(f"time since the first query ({unit}); a bar: submission to observed completion")
    ax.grid(True, axis="x", alpha=0.3)
    shown = f"first {len(q)} of {len(queries)} queries" if len(q) < len(queries) else f"{len(q)} queries"
    busy = float((q["end_ns"] - q["enqueue_start_ns"]).sum()) / 1e6
    inflight = f", {busy / span_ms:.1f} in flight on average" if span_ms > 0 else ""
    ax.set_title(f"queries per stream — {' · '.join(title_parts(queries))} ({shown}{inflight})", fontsize=10)
    return fig


def plot_batching(simulation: pd.DataFrame, measured: pd.DataFrame | None = None, ax: Any = None) -> Any:
    """Opportunistic batching against the maximum delay T: p50 and p99 latency (left) and throughput with the
    mean batch (right). ``simulation``: rows of ``simulate_batching`` (lines); ``measured``: rows of the same
    frame from ``LoadResult.point()`` (markers), or None. Unstable rows (arrivals faster than the engine
    serves) are marked with a red ×. ``ax``: a pair of Axes or None."""
    cols = ("delay_ms", "latency_p50_ms", "latency_p99_ms", "throughput_per_s", "mean_batch")
    check_frame(simulation, "plot_batching: simulation", cols)
    if measured is not None:
        check_frame(measured, "plot_batching: measured", cols)
    if ax is not None:
        if not (isinstance(ax, (list, tuple, np.ndarray)) and len(ax) == 2):
            raise ArgumentError("plot_batching: ax must be a pair of matplotlib Axes (latency, throughput) or None")
        for a in ax:
            check_ax(a, "plot_batching")
        fig, (left, right) = ax[0].figure, ax
    else:
        fig, (left, right) = figure_and_axes(None, (11, 4.2), ncols=2)
    both = pd.concat([f for f in (simulation, measured) if f is not None and len(f)])
    if not len(both):
        say_empty(left, "batching rows")
        return fig
    unit, per = unit_of("ms", both["latency_p99_ms"])
    twin = right.twinx()
    for f, kind in ((simulation, "predicted"), (measured, "measured")):
        if f is None or not len(f):
            continue
        f = f.sort_values("delay_ms")
        line = "-" if kind == "predicted" else "none"
        mark = "" if kind == "predicted" else "o"
        left.plot(f["delay_ms"], f["latency_p50_ms"] / per, ls=line, marker=mark or None, color="C0",
                  label=f"p50, {kind}", gid=f"p50_{kind}")
        left.plot(f["delay_ms"], f["latency_p99_ms"] / per, ls="--" if kind == "predicted" else "none",
                  marker="s" if mark else None, color="C3", label=f"p99, {kind}", gid=f"p99_{kind}")
        right.plot(f["delay_ms"], f["throughput_per_s"], ls=line, marker=mark or None, color="C2",
                   label=f"throughput, {kind}", gid=f"throughput_{kind}")
        twin.plot(f["delay_ms"], f["mean_batch"], ls=":" if kind == "predicted" else "none",
                  marker="D" if mark else None, color="C4", label=f"mean batch, {kind}", gid=f"batch_{kind}")
        if "stable" in f.columns and (~f["stable"].astype(bool)).any():
            bad = f[~f["stable"].astype(bool)]
            left.plot(bad["delay_ms"], bad["latency_p99_ms"] / per, "x", color="crimson", ms=9, mew=2,
                      gid="unstable", label="unstable: arrivals outpace the engine")
    rate = both["arrival_rate_per_s"].dropna().unique() if "arrival_rate_per_s" in both.columns else []
    mbs = both["max_batch_size"].dropna().unique() if "max_batch_size" in both.columns else []
    left.set_xlabel("maximum delay T (ms)")
    right.set_xlabel("maximum delay T (ms)")
    left.set_ylabel(f"request latency ({unit})")
    right.set_ylabel("throughput (requests/s)")
    twin.set_ylabel("mean batch (samples)")
    left.set_ylim(bottom=0)
    right.set_ylim(bottom=0, top=float(np.nanmax(both["throughput_per_s"])) * 1.5)
    twin.set_ylim(bottom=0, top=float(np.nanmax(both["mean_batch"])) * 1.5)
    for a in (left, right):
        a.grid(True, alpha=0.3)
    left.set_ylim(top=float(np.nanmax(both[["latency_p50_ms", "latency_p99_ms"]].to_numpy())) / per * 1.45)
    left.legend(fontsize=8, loc="upper left", ncols=2)
    h1, l1 = right.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    right.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left", ncols=2)
    what = " · ".join(title_parts(both))
    load = (f"{'/'.join(f'{r:,.0f}' if r >= 10 else f'{r:.3g}' for r in rate)} requests/s" if len(rate) else "") + \
        (f", max batch {'/'.join(str(int(b)) for b in mbs)}" if len(mbs) else "")
    left.set_title(f"batching latency vs T — {load}{' · ' + what if what else ''}", fontsize=10)
    right.set_title("throughput and batch size vs T", fontsize=10)
    return fig
