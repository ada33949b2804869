"""GPU clocks, power and the like over time from the ``gpu_samples`` frame (NVML), with the intervals
in which the driver throttled the clocks shaded, on a time axis that can share the layer timeline's
origin."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame, integer, one_of
from ..errors import ArgumentError
from ._axes import bytes_unit, check_ax, figure_and_axes, plain_numbers, say_empty, title_parts

# column -> (what it is, unit); bytes are shown in KiB/MiB/GiB
METRICS = {"sm_clock_mhz": ("SM clock", "MHz"), "mem_clock_mhz": ("memory clock", "MHz"), "power_w": ("power", "W"),
           "util_gpu_pct": ("GPU utilisation", "%"), "util_mem_pct": ("memory-controller utilisation", "%"),
           "temperature_c": ("temperature", "°C"), "mem_used_bytes": ("device memory in use", "B")}
# reasons NVML reports that do not slow a busy GPU down: not shaded as throttling
BENIGN = {"gpu_idle", "applications_clocks", "display_clocks"}
THROTTLE_COLOR = "#c0392b"


def _metrics(metrics: Any, what: str) -> tuple:
    items = [metrics] if isinstance(metrics, str) else metrics
    if not isinstance(items, (list, tuple)) or not items:
        raise ArgumentError(f"{what}: metrics must be a non-empty list of {', '.join(METRICS)}, not {metrics!r}")
    out = tuple(one_of(m, METRICS, f"{what}: metrics item") for m in items)
    if len(set(out)) != len(out):
        raise ArgumentError(f"{what}: metrics names {out} more than once; name each once")
    return out


def plot_gpu_samples(gpu_samples: pd.DataFrame, metrics: Any = ("sm_clock_mhz", "power_w"), ax: Any = None,
                     t0_ns: Any = None) -> Any:
    """Each of ``metrics`` over time, one panel per metric (on the caller's ``ax``: the first metric
    there and a second one on a twin axis), one line per GPU; the power limit beside the power;
    intervals in which NVML reported a throttle reason (other than idle or application clocks)
    shaded and named. x is ms since ``t0_ns``: by default the first sample; pass the layer
    timeline's origin (its first layer's ``start_ns``) to line the two up."""
    what = "plot_gpu_samples"
    df = check_frame(gpu_samples, f"{what}: gpu_samples (run.gpu, a gpu_samples frame)",
                     ("ts_ns", "gpu", "throttle_reasons"))
    metrics = _metrics(metrics, what)
    check_frame(df, f"{what}: gpu_samples", metrics)
    if t0_ns is not None:
        t0_ns = integer(t0_ns, f"{what}: t0_ns (the perf_counter_ns that is 0 ms on the x axis, or None)")
    check_ax(ax, what)
    if ax is not None and len(metrics) > 2:
        raise ArgumentError(f"{what}: on one given ax at most 2 metrics fit (the second on a twin axis), not "
                            f"{len(metrics)}; pass ax=None for a panel per metric")
    own = ax is None
    fig, ax = figure_and_axes(ax, (11, 1.9 * len(metrics) + 0.9), nrows=len(metrics), sharex=True, squeeze=False) \
        if own else figure_and_axes(ax, (11, 3))
    panels = list(ax[:, 0]) if own else [ax] + ([ax.twinx()] if len(metrics) == 2 else [])
    parts = title_parts(df)
    names = [METRICS[m][0] for m in metrics]
    panels[0].set_title("GPU " + (", ".join(names[:-1]) + " and " if len(names) > 1 else "") + names[-1] + " over time"
                        + (f" — {' · '.join(parts)}" if parts else ""), fontsize=9)
    if df.empty:
        say_empty(panels[0], "GPU samples (the run was not on a GPU, or NVML was not available)")
        return fig
    df = df.sort_values("ts_ns", kind="stable")
    t0 = int(df["ts_ns"].min()) if t0_ns is None else t0_ns
    x = (df["ts_ns"].to_numpy() - t0) / 1e6
    for k, (panel, metric) in enumerate(zip(panels, metrics)):
        _metric(panel, df, x, metric, k if not own else 0)
    _throttles(panels if own else panels[:1], df, x)
    bottom = panels[-1] if own else panels[0]
    plain_numbers(bottom.xaxis)
    bottom.set_xlabel("time (ms) since " + ("t0_ns (the timeline's origin)" if t0_ns is not None
                                              else "the first sample"))
    _legend(fig, panels, own)
    return fig


def _metric(ax: Any, df: pd.DataFrame, x: np.ndarray, metric: str, shift: int) -> None:
    """One line per GPU (colours C<shift>, C<shift+1>, ...; a metric on a twin axis shifts them so the
    two axes differ), each sample a dot where they are few, its legend row giving the median, range
    and sample count; the y label in the colour of its first line."""
    name, unit = METRICS[metric]
    per = 1.0
    if unit == "B":
        unit, per = bytes_unit(float(df[metric].max()))
    for i, (gpu, g) in enumerate(df.groupby("gpu", sort=True)):
        rows = (df["gpu"] == gpu).to_numpy()
        v = g[metric].to_numpy(float) / per
        label = (f"{name}, GPU {gpu}" if df["gpu"].nunique() > 1 else name) + _summary(v, unit)
        ax.plot(x[rows], v, lw=1.2, color=f"C{i + shift}", gid=f"{metric}:{gpu}", label=label,
                drawstyle="steps-post", marker="o" if len(v) <= FEW else None, ms=3)
    if metric == "power_w" and "power_limit_w" in df:
        limit = df["power_limit_w"].dropna()
        if len(limit):
            ax.axhline(float(limit.max()), color="0.3", ls=":", lw=1, gid="power_limit",
                       label=f"power limit {limit.max():.0f} W")
    ax.set_ylabel(f"{name} ({unit})", fontsize=8, color=f"C{shift}" if shift else "black")
    lo, hi = ax.get_ylim()
    ax.set_ylim(min(0.0, lo), hi * 1.08 if hi > 0 else 1.0)
    if not shift:                                   # the twin axis draws no grid of its own over the first's
        ax.grid(axis="y", lw=0.3)


FEW = 200                   # samples up to this many are drawn as dots too (how often NVML was read shows)


def _summary(v: np.ndarray, unit: str) -> str:
    """': median 1980 MHz (1500–1980), 100 samples', or ': 1980 MHz in all 5 samples'."""
    v = v[np.isfinite(v)]
    if not len(v):
        return ": no samples"
    lo, med, hi = float(v.min()), float(np.median(v)), float(v.max())
    if lo == hi:
        return f": {lo:.4g} {unit} in all {len(v)} samples"
    return f": median {med:.4g} {unit} ({lo:.4g}–{hi:.4g}), {len(v)} samples"


def _throttles(panels: list, df: pd.DataFrame, x: np.ndarray) -> None:
    """Shades each run of samples whose reasons include one that slows the clocks, from that run's
    first sample to the sample after its last (the period the reasons were read over)."""
    reasons = [frozenset(r.split("|")) - BENIGN - {""} for r in df["throttle_reasons"].fillna("")]
    hot = np.array([bool(r) for r in reasons])
    if not hot.any():
        panels[0].plot([], [], " ", gid="no_throttle", label="no throttle reason in any sample")
        return
    starts = np.flatnonzero(hot & ~np.r_[False, hot[:-1]])
    ends = np.flatnonzero(hot & ~np.r_[hot[1:], False])
    seen = sorted(set().union(*reasons))
    for k, (s, e) in enumerate(zip(starts, ends)):
        right = x[e + 1] if e + 1 < len(x) else x[e] + (x[e] - x[e - 1] if e else 1e-3)
        for panel in panels:
            panel.axvspan(x[s], right, color=THROTTLE_COLOR, alpha=0.15, lw=0, gid="throttle",
                          label=f"throttled: {', '.join(seen)}" if k == 0 and panel is panels[0] else "_throttle")


def _legend(fig: Any, panels: list, own: bool) -> None:
    """Each panel's legend beside it, top-aligned with it (never over its data); on one given ax with a
    twin, the rows of both in one legend beside the ax, clear of the twin's labels."""
    kw = dict(fontsize=7, alignment="left", loc="upper left", borderaxespad=0)
    if own:
        for p in panels:
            if p.get_legend_handles_labels()[0]:
                p.legend(bbox_to_anchor=(1.01, 1.0), **kw)
        return
    handles, labels = [], []
    for p in panels:
        h, lab = p.get_legend_handles_labels()
        handles += h
        labels += lab
    if handles:
        panels[0].legend(handles, labels, bbox_to_anchor=(1.12 if len(panels) > 1 else 1.01, 1.0), **kw)
