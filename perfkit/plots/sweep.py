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
            ax.plot(gp["batch_size"], gp[metric], styles.get(precision, "-"), marker="o", ms=4,
                    color=colors[i % len(colors)], label=f"{model} {precision}")
    ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel(LABELS.get(metric, metric))
    device = frame.attrs.get("device_name") or (frame["device"].iloc[0] if len(frame) else "")
    ax.set_title(f"{LABELS.get(metric, metric)} vs batch size — {device}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig
