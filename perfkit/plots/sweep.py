"""Charts of the ``sweep`` frame: a metric against batch size, one line per model and precision."""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..arguments import flag, frame as check_frame, one_of
from ._axes import check_ax, figure_and_axes

LABELS = {"throughput_per_s": "throughput (samples/s)", "latency_median_ms": "median latency (ms)",
          "latency_mean_ms": "mean latency (ms)", "latency_p90_ms": "p90 latency (ms)",
          "device_memory_bytes": "device memory (bytes)"}


def plot_sweep(frame: pd.DataFrame, metric: str = "throughput_per_s", ax: Any = None, logy: bool = True) -> Any:
    """Draws ``metric`` against batch size (log-log), a line per (model, precision). Returns the figure."""
    import matplotlib
    check_frame(frame, "plot_sweep: frame", ("model", "precision", "batch_size"))
    numeric = [c for c in frame.columns if c != "batch_size" and pd.api.types.is_numeric_dtype(frame[c])]
    one_of(metric, numeric, "plot_sweep: metric (a numeric column of the sweep frame)")
    flag(logy, "plot_sweep: logy")
    check_ax(ax, "plot_sweep")
    fig, ax = figure_and_axes(ax, (7, 4.2))
    styles = {"fp32": "-", "fp16": "--", "bf16": ":"}
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (model, g) in enumerate(frame.groupby("model", sort=False)):
        for precision, gp in g.groupby("precision", sort=False):
            gp = gp.sort_values("batch_size")
            color = colors[i % len(colors)]
            ax.plot(gp["batch_size"], gp[metric], styles.get(precision, "-"), marker="o", ms=4,
                    color=color, label=f"{model} {precision}")
            band = _interval(gp, metric)
            if band is not None:
                ax.fill_between(gp["batch_size"], band[0], band[1], color=color, alpha=0.18, lw=0, gid="interval")
    ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel(LABELS.get(metric, metric))
    device = frame.attrs.get("device_name") or (frame["device"].iloc[0] if len(frame) else "")
    ax.set_title(f"{LABELS.get(metric, metric)} vs batch size — {device}")
    ax.grid(True, which="both", alpha=0.3)
    if any(c.get_gid() == "interval" for c in ax.collections):
        ax.text(0.99, 0.01, "bands: 95% interval of the median latency", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="0.35")
    ax.legend(fontsize=7, ncol=2)
    return fig


def _interval(rows: pd.DataFrame, metric: str) -> Any:
    """(low, high) of ``metric`` from the rows' interval of the median latency, when the sweep recorded
    one (``latency_ci_low_ms``/``latency_ci_high_ms``) and the metric follows from that latency."""
    if not {"latency_ci_low_ms", "latency_ci_high_ms"} <= set(rows.columns):
        return None
    lo, hi = rows["latency_ci_low_ms"].astype(float), rows["latency_ci_high_ms"].astype(float)
    if lo.isna().all():
        return None
    if metric == "latency_median_ms":
        return lo.to_numpy(), hi.to_numpy()
    if metric == "throughput_per_s":                    # samples/s = batch / latency: the bounds swap
        b = rows["batch_size"].astype(float)
        return (b / hi * 1e3).to_numpy(), (b / lo * 1e3).to_numpy()
    return None
