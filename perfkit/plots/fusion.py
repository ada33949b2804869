"""Charts of the fusion_benefit frame."""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..arguments import frame as check_frame
from ._axes import check_ax, figure_and_axes


def plot_fusion_benefit(frame: pd.DataFrame, ax: Any = None) -> Any:
    """Horizontal bars: latency added when each rule is switched off (ms), with the layer count."""
    check_frame(frame, "plot_fusion_benefit: frame", ("rule", "latency_ms", "latency_delta_ms", "layers"))
    check_ax(ax, "plot_fusion_benefit")
    fig, ax = figure_and_axes(ax, (7, 0.45 * len(frame) + 1.2))
    f = frame.iloc[::-1]
    colors = ["#999999" if r.startswith("(") else ("#2a7ab9" if d >= 0 else "#c0504d")
              for r, d in zip(f["rule"], f["latency_delta_ms"])]
    ax.barh(f["rule"], f["latency_delta_ms"], color=colors)
    for y, (d, n) in enumerate(zip(f["latency_delta_ms"], f["layers"])):
        ax.annotate(f"{d:+.3f} ms, {n} layers", (max(d, 0.0), y), xytext=(4, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ref = frame.loc[frame["rule"] == "(all rules)", "latency_ms"]
    ax.set_xlabel("latency added with the rule switched off (ms)"
                  + (f"; all rules on: {float(ref.iloc[0]):.3f} ms" if len(ref) else ""))
    a = frame.attrs
    ax.set_title(f"fusion benefit — {a.get('network', '')}, batch {a.get('batch_size', '?')}, {a.get('device', '')}")
    lo, hi = float(min(0.0, f["latency_delta_ms"].min())), float(max(0.0, f["latency_delta_ms"].max()))
    span = (hi - lo) or 1.0
    ax.set_xlim(lo - 0.05 * span, hi + 0.6 * span)
    return fig
