"""The SweepExplorer's figure (private: it serves perfkit.widgets.SweepExplorer alone, and draws the explorer's
points frame, which is no documented frame schema): one metric of the shown configurations against batch size,
precision or streams, a line per configuration key, coloured by one key, one panel per value of another, with
the 95% interval as a band and unstable points ringed. Also the sweep vocabulary the explorer offers: its
metrics with their labels and kinds, configuration keys, x axes and the reading order of values."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..precision import PRECISION_ORDER
from ._axes import WIDTH_IN, figure_and_axes, say_empty, unit_of
from .readouts import sweep_readout

#: metric -> (label, kind); kind: "ms" (a duration), "bytes", "rate" (samples/s)
METRICS = {
    "latency_median_ms": ("median latency", "ms"),
    "latency_p90_ms": ("p90 latency", "ms"),
    "latency_p99_ms": ("p99 latency", "ms"),
    "throughput_per_s": ("throughput", "rate"),
    "time_per_sample_ms": ("time per sample", "ms"),
    "device_memory_bytes": ("device memory, predicted", "bytes"),
    "measured_device_memory_bytes": ("device memory, measured", "bytes"),
    "build_time_ms": ("build time", "ms"),
    "layer_time_ms": ("per-layer time (median)", "ms"),
}
ALWAYS = ("latency_median_ms", "latency_p90_ms", "throughput_per_s", "time_per_sample_ms", "device_memory_bytes",
          "build_time_ms")
KEYS = ("model", "device", "precision", "batch_size")
X_AXES = {"batch_size": "batch size", "precision": "precision", "streams": "streams"}
GROUPS = ("model", "precision", "device")


def rank(value: Any) -> tuple:
    """Sort key in reading order: precisions from wide to narrow, then numbers ascending, then names."""
    return (PRECISION_ORDER.index(value) if value in PRECISION_ORDER else 99,
            float(value) if isinstance(value, (int, float, np.integer)) else 0.0, str(value))


STYLES = ("-", "--", ":", "-.")
#: a facet panel's least width and the legend's (inches): facets wrap into rows within the figure width budget
PANEL_IN, LEGEND_IN = 3.6, 2.2
MARKERS = ("o", "s", "^", "D", "v", "P")


def plot_sweep_points(pts: pd.DataFrame, metric: str, x: str = "batch_size", color: str = "model",
                      facet: str = "none", bands: bool = True, logx: bool = True, logy: bool = False,
                      layer: str = "") -> Any:
    """The figure of ``pts`` (see the module doc). Returns it."""
    label, kind = METRICS[metric]
    facets = sorted(pts[facet].unique(), key=str) if facet != "none" and len(pts) else [None]
    ncols = min(len(facets), int((WIDTH_IN - LEGEND_IN) // PANEL_IN))     # panels that fit beside the legend
    nrows = math.ceil(len(facets) / ncols)
    fig, axes = figure_and_axes(None, (min(WIDTH_IN, PANEL_IN * ncols + LEGEND_IN + 1.0), 3.1 * nrows + 0.8),
                                nrows=nrows, ncols=ncols,
                                sharey=True, squeeze=False)
    unit, per = unit_of(kind, pts["value"].to_numpy() if len(pts) else [])
    keys = [k for k in KEYS if k not in (x, facet)]
    cby = color if color in keys else keys[0]
    colors = _palette(_ordered(pts[cby].unique()) if len(pts) else [])
    order = _x_order(pts, x)
    varying = [k for k in keys if pts[k].nunique() > 1]        # the others are named in the title
    handles: dict = {}
    rings = None
    for ax, fv in zip(axes.flat, facets):
        sub = pts if fv is None else pts[pts[facet] == fv]
        if not len(sub):
            say_empty(ax, "measured points")
        groups = {k if isinstance(k, tuple) else (k,): g for k, g in sub.groupby(keys, sort=False)}
        for vals in sorted(groups, key=lambda t: [rank(v) for v in t]):
            g = groups[vals]
            vals = dict(zip(keys, vals))
            g = g.assign(_x=g[x].map(order) if order else g[x]).sort_values("_x")
            style = _style_index(vals, keys, cby, pts)
            name = " · ".join(_fmt_key(k, vals[k]) for k in varying) or _fmt_key(keys[0], vals[keys[0]])
            c = colors[vals[cby]]
            line, = ax.plot(g["_x"], g["value"] / per, STYLES[style % len(STYLES)],
                            marker=MARKERS[style % len(MARKERS)], ms=4, color=c, label=name, gid="line")
            handles.setdefault(name, line)
            if bands and g["low"].notna().any():
                ax.fill_between(g["_x"], g["low"] / per, g["high"] / per, color=c, alpha=0.18, lw=0, gid="band")
            bad = g[g["unstable"].eq(True)] if "unstable" in g else g.iloc[:0]
            if len(bad):
                ring = ax.scatter(bad["_x"], bad["value"] / per, s=90, facecolors="none", edgecolors="red", lw=1.2,
                                  zorder=5, gid="unstable", label="unstable (spread above the sweep's limit)")
                rings = ring
        _axes_style(ax, x, order, logx, logy, fv, facet, sorted(pts[x].unique()) if not order and len(pts) else [])
        sweep_readout(ax, X_AXES[x], {i: str(v) for v, i in order.items()}, label, unit)
    for ax in axes.flat[len(facets):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{label}{' — ' + layer if metric == 'layer_time_ms' and layer else ''} ({unit})")
    fig.suptitle(_title(pts, label, x, layer if metric == "layer_time_ms" else ""), fontsize=10, x=0.01, ha="left")
    if rings is not None:
        handles["unstable"] = rings                              # last in the legend
    if handles:
        fig.legend(handles=list(handles.values()), labels=[h.get_label() for h in handles.values()],
                   loc="outside right center", fontsize=7, title=" · ".join(varying), title_fontsize=7)
    if bands and any(c.get_gid() == "band" for ax in axes.flat for c in ax.collections):
        fig.text(0.995, 0.003, "bands: interval of the median (at least 95%)", ha="right", va="bottom", fontsize=7, color="0.35")
    return fig


def _ordered(values: Any) -> list:
    return sorted(values, key=rank)


def _palette(values: list) -> dict:
    import matplotlib
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return {v: cycle[i % len(cycle)] for i, v in enumerate(values)}


def _style_index(vals: dict, keys: list, cby: str, pts: pd.DataFrame) -> int:
    """Lines of one colour differ in style: the position of their other keys among those of the frame."""
    others = [k for k in keys if k != cby]
    if not others:
        return 0
    def order(t: tuple) -> tuple:
        return tuple((0, float(v), "") if isinstance(v, (int, float, np.integer)) else (1, 0.0, str(v)) for v in t)
    combos = sorted({tuple(r) for r in pts[others].to_numpy().tolist()}, key=order)
    return combos.index(tuple(vals[k] for k in others))


def _fmt_key(key: str, value: Any) -> str:
    return f"batch {value}" if key == "batch_size" else str(value)


def _x_order(pts: pd.DataFrame, x: str) -> dict:
    """Positions of a categorical x axis (precision); {} for a numeric one."""
    if x != "precision":
        return {}
    vals = _ordered(pts["precision"].unique())
    return {v: i for i, v in enumerate(vals)}


def _axes_style(ax: Any, x: str, order: dict, logx: bool, logy: bool, fv: Any, facet: str, ticks: list) -> None:
    if order:
        ax.set_xticks(list(order.values()), list(order.keys()))
        ax.set_xlim(-0.4, max(order.values(), default=0) + 0.4)
    else:
        if logx:
            ax.set_xscale("log", base=2)
        if ticks and len(ticks) <= 12:                # the values measured, as integers
            ax.set_xticks([float(t) for t in ticks], [str(int(t)) for t in ticks])
            ax.minorticks_off()
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(X_AXES[x])
    ax.grid(True, which="both", alpha=0.3)
    if fv is not None:
        ax.set_title(_fmt_key(facet, fv), fontsize=9)


def _title(pts: pd.DataFrame, label: str, x: str, layer: str) -> str:
    """Metric against x, then what the lines share: one model, device or precision is named, several counted."""
    parts = []
    for key, word in (("model", "models"), ("device", "devices"), ("precision", "precisions")):
        vals = [str(v) for v in _ordered(pts[key].unique())] if len(pts) else []
        if len(vals) == 1:
            parts.append(pts.attrs.get("device_name") or vals[0] if key == "device" else vals[0])
        elif vals:
            parts.append(f"{len(vals)} {word}" if len(vals) > 3 else "/".join(vals))
    what = f"{label} of {layer}" if layer else label
    return f"{what} vs {X_AXES[x]}" + (f"\n{' · '.join(parts)}" if parts else "")
