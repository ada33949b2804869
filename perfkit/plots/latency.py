"""Latency charts: throughput against latency over a sweep (with a latency budget), and the
distribution of the latencies of one measurement (histogram and CDF with their percentiles)."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame, number
from ..errors import ArgumentError
from ._axes import check_ax, figure_and_axes, human_ms, ms_unit, say_empty, tick_text, title_parts

SWEEP_COLUMNS = ("model", "precision", "batch_size", "latency_median_ms", "throughput_per_s")
STYLES = {"fp32": "-", "fp16": "--", "bf16": ":"}
PERCENTILES = (50, 90, 99)


def plot_latency_throughput(sweep: pd.DataFrame, budget_ms: Any = None, ax: Any = None) -> Any:
    """Throughput against median latency, one curve per (model, precision) through its batch sizes
    (each point named by its batch), with the 95% interval of the median as error bars where the
    sweep recorded one. ``budget_ms`` draws the latency budget and marks the configuration with the
    highest throughput whose median latency is within it (hollow rings: rows flagged unstable)."""
    what = "plot_latency_throughput"
    df = check_frame(sweep, f"{what}: sweep (the frame of pk.sweep)", SWEEP_COLUMNS)
    if budget_ms is not None:
        budget_ms = number(budget_ms, f"{what}: budget_ms (the latency budget in ms, or None)", 0,
                           exclusive_minimum=True)
    check_ax(ax, what)
    fig, ax = figure_and_axes(ax, (9, 5))
    ok = df[df["latency_median_ms"].notna() & df["throughput_per_s"].notna()]
    title = " · ".join(title_parts(df.iloc[:0], df.drop(columns=["batch_size", "precision", "model"], errors="ignore")))
    ax.set_title("throughput vs latency over batch sizes" + (f" — {title}" if title else "")
                 + (f" — budget {human_ms(budget_ms)}" if budget_ms is not None else ""), fontsize=9)
    if ok.empty:
        say_empty(ax, "measured configurations" + (f" ({len(df)} failed)" if len(df) else ""))
        return fig
    unit, per = ms_unit(float(ok["latency_median_ms"].max()))
    _curves(ax, ok, per)
    if budget_ms is not None:
        _budget(ax, ok, budget_ms, per)
    _scales(ax, ok, per)
    if budget_ms is not None:
        lo, hi = ax.get_xlim()
        ax.axvspan(budget_ms / per, max(hi, budget_ms / per), color="#c0392b", alpha=0.06, lw=0, gid="over_budget")
        ax.set_xlim(lo, hi)
    ax.set_xlabel(f"median latency per inference ({unit})")
    ax.set_ylabel("throughput (samples/s)")
    ax.grid(True, which="both", lw=0.3, alpha=0.6)
    notes = []
    if any(c.get_gid() == "ci" for c in ax.collections):
        notes.append("error bars: interval of the median (at least 95%)")
    if len(df) > len(ok):
        notes.append(f"{len(df) - len(ok)} configuration(s) failed, not drawn")
    if notes:
        ax.text(0.99, 0.01, "; ".join(notes), transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="0.35")
    _plain_log_ticks(ax)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(handles)), key=lambda i: not (handles[i].get_gid() or "").startswith("curve:"))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0, fontsize=7)
    _drop_crowded_labels(ax)
    return fig


def _curves(ax: Any, df: pd.DataFrame, per: float) -> None:
    import matplotlib
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    ci = {"latency_ci_low_ms", "latency_ci_high_ms"} <= set(df.columns)
    unstable_shown = False
    for i, (model, g) in enumerate(df.groupby("model", sort=False)):
        color = colors[i % len(colors)]
        for precision, gp in g.groupby("precision", sort=False):
            gp = gp.sort_values("batch_size")
            x, y = gp["latency_median_ms"].to_numpy(float), gp["throughput_per_s"].to_numpy(float)
            ax.plot(x / per, y, STYLES.get(precision, "-."), marker="o", ms=5, color=color,
                    label=f"{model} {precision}", gid=f"curve:{model}:{precision}")
            if ci and gp["latency_ci_low_ms"].notna().any():
                lo, hi = gp["latency_ci_low_ms"].to_numpy(float), gp["latency_ci_high_ms"].to_numpy(float)
                b = gp["batch_size"].to_numpy(float)
                xerr = np.nan_to_num(np.vstack([x - lo, hi - x]) / per)
                yerr = np.nan_to_num(np.vstack([y - b / hi * 1e3, b / lo * 1e3 - y]))
                bars = ax.errorbar(x / per, y, xerr=np.maximum(xerr, 0), yerr=np.maximum(yerr, 0), fmt="none",
                                   ecolor=color, elinewidth=0.9, capsize=2, alpha=0.7)
                for c in bars.lines[2]:
                    c.set_gid("ci")
            if "unstable" in gp and gp["unstable"].fillna(False).any():
                u = gp[gp["unstable"].fillna(False).astype(bool)]
                ax.plot(u["latency_median_ms"] / per, u["throughput_per_s"], "o", ms=11, mfc="none", mec="#c0392b",
                        gid="unstable", label="_unstable" if unstable_shown else "unstable: spread too wide")
                unstable_shown = True
            k = list(STYLES).index(precision) if precision in STYLES else 0
            last = len(gp) - 1
            for j, (xb, yb, batch) in enumerate(zip(x / per, y, gp["batch_size"])):   # precisions' labels apart
                t = ax.annotate(f"b{batch}", (xb, yb), xytext=((5, -10), (-5, 4), (5, 4))[k % 3],
                                textcoords="offset points", fontsize=7, color=color, gid="batch_label",
                                ha="right" if k % 3 == 1 else "left")
                t.priority = 0 if j in (0, last) else 1                 # each curve's ends are named first


def _budget(ax: Any, df: pd.DataFrame, budget_ms: float, per: float) -> None:
    ax.axvline(budget_ms / per, color="#c0392b", ls="--", lw=1.2, gid="budget",
               label=f"latency budget {human_ms(budget_ms)}")
    within = df[df["latency_median_ms"] <= budget_ms]
    if within.empty:
        ax.text(0.02, 0.97, f"no configuration meets the {human_ms(budget_ms)} budget", transform=ax.transAxes,
                ha="left", va="top", fontsize=8, color="#c0392b", gid="best_label")
        return
    best = within.loc[within["throughput_per_s"].idxmax()]
    x, y = float(best["latency_median_ms"]) / per, float(best["throughput_per_s"])
    ax.plot([x], [y], marker="*", ms=16, color="gold", mec="black", ls="none", gid="best",
            label=f"best within budget: {best['model']} {best['precision']} batch {best['batch_size']}\n"
                  f"{_fmt_rate(y)} samples/s at {human_ms(float(best['latency_median_ms']))}")


def _plain_log_ticks(ax: Any) -> None:
    """A log latency axis ticked at 1, 2, 5 x 10^k and written as plain numbers (0.1, 0.2, 0.5, 1),
    not as 10^-1."""
    if ax.get_xscale() != "log":
        return
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator
    lo, hi = ax.get_xlim()
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if hi / lo < 1e3 else (1.0,)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _drop_crowded_labels(ax: Any) -> None:
    """Hides batch labels that would overlap one already kept (each curve's first and last batch
    are placed first), so that the names that show can be read."""
    fig = ax.figure
    fig.draw_without_rendering()
    texts = sorted((t for t in ax.texts if t.get_gid() == "batch_label"), key=lambda t: getattr(t, "priority", 1))
    kept = []
    for t in texts:
        box = t.get_window_extent().expanded(1.05, 1.1)
        if any(box.overlaps(k) for k in kept):
            t.set_visible(False)
        else:
            kept.append(box)


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _scales(ax: Any, df: pd.DataFrame, per: float) -> None:
    """Log axes where the values span more than a factor of 20; thousands separators on throughput."""
    from matplotlib.ticker import FuncFormatter
    lat, thr = df["latency_median_ms"], df["throughput_per_s"]
    if lat.max() / max(lat.min(), 1e-12) > 20:
        ax.set_xscale("log")
    else:
        ax.set_xlim(left=0, right=max(float(lat.max()) / per * 1.1, ax.get_xlim()[1]))
    if thr.max() / max(thr.min(), 1e-12) > 20:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0, top=float(thr.max()) * 1.15)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt_rate(v)))


def _latencies(data: Any, what: str) -> tuple:
    """(latencies in ms as floats, what they are, the frame or None)."""
    if isinstance(data, pd.DataFrame):
        if "host_latency_ms" in data and data["host_latency_ms"].notna().any():
            col, name = "host_latency_ms", "host latency"
        elif "latency_ms" in data:
            col, name = "latency_ms", "latency"
        else:
            raise ArgumentError(f"{what}: the frame has neither host_latency_ms nor latency_ms; pass a queries frame "
                                f"(run.queries, measurement.queries) or an array of latencies in ms")
        return data[col].to_numpy(dtype=float), name, data
    if isinstance(data, (pd.Series, np.ndarray, list, tuple)):
        arr = np.asarray(data, dtype=object).reshape(-1)
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in arr):
            raise ArgumentError(f"{what}: latencies must be numbers (ms); got {type(data).__name__} holding "
                                "something else")
        return arr.astype(float), "latency", None
    raise ArgumentError(f"{what}: pass a queries frame or an array of latencies in ms, not {type(data).__name__}")


def plot_latency_distribution(queries_or_latencies_ms: Any, ax: Any = None) -> Any:
    """A histogram of the latencies with their CDF on a second axis (0-100%), the number of
    inferences in the title, and p50, p90 and p99 marked and labelled (µs below 1 ms).

    Percentiles that so few samples cannot tell apart from the slowest one (p99 below 100
    inferences, p90 below 10) are not drawn; the maximum is marked instead and its label says so.
    The bins resolve the bulk: a long tail (beyond Tukey's far-out fence, q75 + 3 IQR, and beyond
    twice the median) is drawn as one hatched overflow bin to the right, counted and named. Takes a
    queries frame (its host latency, else its device latency) or an array of latencies in ms;
    missing values are left out."""
    what = "plot_latency_distribution"
    values, name, frame = _latencies(queries_or_latencies_ms, what)
    check_ax(ax, what)
    values = np.sort(values[np.isfinite(values)])
    fig, ax = figure_and_axes(ax, (9, 4.2))
    parts = title_parts(frame.drop(columns=["precision"], errors="ignore")) if frame is not None else []
    ax.set_title(f"{name} distribution — n = {len(values):,} inferences" + (f" · {' · '.join(parts)}" if parts else ""),
                 fontsize=9)
    if not len(values):
        say_empty(ax, "latencies")
        return fig
    shown, tail, fence = _bulk_and_tail(values)
    unit, per = ms_unit(float(shown[-1]))
    edges = _bin_edges(shown)
    counts, _, _ = ax.hist(shown / per, bins=edges / per, color="#4c72b0", alpha=0.75, gid="histogram",
                           label="inferences per bin")
    width = float(edges[1] - edges[0])
    over_x = (float(edges[-1]) + 1.5 * width) / per                 # the overflow bin's centre
    if len(tail):
        _overflow(ax, tail, over_x, width / per, fence)
        counts = np.r_[counts, len(tail)]
    ax.set_xlim(float(edges[0] - width) / per, (over_x + width / per) if len(tail) else float(edges[-1] + width) / per)
    ax.set_ylim(0, float(counts.max()) * 1.45)                     # room above the bars for the labels
    ax.set_xlabel(f"{name} per inference ({unit})")
    ax.set_ylabel("inferences")
    _ticks(ax, edges / per, over_x if len(tail) else None, fence)
    cdf = ax.twinx()
    cdf.plot(shown / per, 100 * np.arange(1, len(shown) + 1) / len(values), color="black", lw=1.2, gid="cdf",
             label="CDF")
    cdf.set_ylim(0, 145)
    cdf.set_yticks([0, 25, 50, 75, 100])
    cdf.set_ylabel("inferences at or below (%)")
    _marks(ax, values, float(shown[-1]), over_x, per)
    return fig


TAIL_IQRS = 3.0             # Tukey's far-out fence: q75 + 3 IQR
TAIL_MEDIANS = 2.0          # ... and at least twice the median, so that a tight bulk keeps its near tail
ENOUGH = {90: 10, 99: 100}  # fewer samples than this: the percentile is (close to) the slowest sample


def _bulk_and_tail(values: np.ndarray) -> tuple:
    """(sorted values within the tail fence, sorted values beyond it, the fence in ms)."""
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    fence = max(q75 + TAIL_IQRS * (q75 - q25), TAIL_MEDIANS * q50)
    k = int(np.searchsorted(values, fence, side="right"))
    return values[:k], values[k:], float(fence)


def _ticks(ax: Any, edges: np.ndarray, over_x: Any, fence_ms: float) -> None:
    """Plain ticks over the bulk; the overflow bin's tick says what it holds ('> 1.50 ms'), since its
    place on the axis is not its latency."""
    from matplotlib.ticker import MaxNLocator
    vals = MaxNLocator(7, steps=[1, 2, 2.5, 5, 10]).tick_values(edges[0], edges[-1])
    step = max(float(vals[1] - vals[0]), 1e-9) if len(vals) > 1 else 1.0
    vals = [float(v) for v in vals if edges[0] - 0.5 * step <= v <= edges[-1] + (0.5 * step if over_x is None else 0)]
    ticks, labels = vals, [tick_text(v, step) for v in vals]
    if over_x is not None:
        ticks, labels = [*ticks, over_x], [*labels, f"> {human_ms(fence_ms)}"]
    ax.set_xticks(ticks, labels)


def _bin_edges(shown: np.ndarray) -> np.ndarray:
    """Freedman-Diaconis bins over the bulk, between 8 and 80 of them; one narrow bin when all are equal."""
    lo, hi = float(shown[0]), float(shown[-1])
    if hi <= lo:
        half = max(abs(lo) * 0.005, 1e-6)
        return np.array([lo - half, lo + half])
    n = len(np.histogram_bin_edges(shown, bins="fd")) - 1
    return np.linspace(lo, hi, min(80, max(8, n)) + 1)


def _overflow(ax: Any, tail: np.ndarray, x: float, width: float, fence_ms: float) -> None:
    """The tail as one hatched bar beside the bulk, with how many, from when and the slowest."""
    ax.bar([x], [len(tail)], width=width, color="#c0392b", alpha=0.35, hatch="//", edgecolor="#c0392b",
           gid="overflow", label="slower than the bulk")
    ax.annotate(f"{len(tail)} slower than {human_ms(fence_ms)}\n(slowest {human_ms(float(tail[-1]))})",
                (x - width / 2, len(tail)), xytext=(-3, 2), textcoords="offset points", ha="right", va="bottom",
                fontsize=7, color="#c0392b", gid="tail_note")


def _marks(ax: Any, values: np.ndarray, top: float, over_x: float, per: float) -> None:
    """p50, p90, p99 where the sample count supports them, else the maximum naming those it stands for;
    a mark in the tail is drawn on the overflow bin. Labels that would overlap go one under the other."""
    n = len(values)
    marks = [(f"p{p}", float(np.percentile(values, p)), f"p{p} {human_ms(float(np.percentile(values, p)))}")
             for p in PERCENTILES if n >= ENOUGH.get(p, 0)]
    stand_in = [f"p{p}" for p in PERCENTILES if n < ENOUGH.get(p, 0)]
    if stand_in:
        marks.append(("max", float(values[-1]), f"max {human_ms(float(values[-1]))} "
                      f"(n = {n}: {' and '.join(stand_in)} ≈ max)"))
    colors = {"p50": "#2ca02c", "p90": "#ff7f0e", "p99": "#c0392b", "max": "#7f0000"}
    lo, hi = ax.get_xlim()
    last, row = -np.inf, 0
    for gid, v, text in marks:
        x = v / per if v <= top else over_x
        ax.axvline(x, color=colors[gid], lw=1.2, ls="--", gid=gid)
        row = row + 1 if x - last < 0.25 * (hi - lo) else 0
        right = x > lo + 0.6 * (hi - lo)
        ax.annotate(text, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(-3 if right else 3, -4 - 13 * row),
                    textcoords="offset points", fontsize=8, va="top", ha="right" if right else "left",
                    gid=f"{gid}_label", bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
        last = x
