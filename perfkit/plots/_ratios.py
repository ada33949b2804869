"""The figure of ``perfkit.widgets.compare``: per matched point (or layer), the ratio b/a of median
latency with its interval and a line at 1. Private: its input is the comparison's ratio table."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..frames.stats import RATIO_NOISE_PCT as NOISE_PCT
from ._axes import figure_and_axes, say_empty


def plot_ratios(table: pd.DataFrame, labels: tuple, what: str, where: str = "") -> Any:
    """Each match's ratio b/a as a point with its 95% interval, a line at 1; significant faster green,
    slower red, not significant grey (the table's ``significant``: within 3% of 1 is grey too). Points of
    configurations whose engines differ (the table's ``engine`` is 'other') are hollow and say so."""
    keys = [c for c in table.columns if c in ("layer", "model", "device", "precision", "batch_size")]
    n = len(table)
    fig, ax = figure_and_axes(None, (9, 1.2 + 0.28 * max(n, 3)))
    if not n:
        say_empty(ax, f"{what}s measured in both")
        return fig
    other = (table["engine"] == "other").to_numpy() if "engine" in table.columns else np.zeros(n, bool)
    names = [" · ".join(f"batch {r[k]}" if k == "batch_size" else str(r[k]) for k in keys)
             + (" · other engine" if o else "") for (_, r), o in zip(table.iterrows(), other)]
    y = np.arange(n)
    color = np.where(~table["significant"], "0.55", np.where(table["ratio"] < 1, "tab:green", "tab:red"))
    lo = (table["ratio"] - table["ratio_low"]).fillna(0).clip(lower=0)
    hi = (table["ratio_high"] - table["ratio"]).fillna(0).clip(lower=0)
    for i in range(n):
        ax.errorbar(table["ratio"].iloc[i], y[i], xerr=[[lo.iloc[i]], [hi.iloc[i]]], fmt="o", color=color[i],
                    ms=5, capsize=3, gid="ratio", mfc="white" if other[i] else color[i])
    ax.axvline(1.0, color="black", lw=0.9, gid="one")
    ends = pd.concat([table["ratio_low"].fillna(table["ratio"]), table["ratio_high"].fillna(table["ratio"])])
    ends = ends[ends > 0]
    if len(ends) and ends.max() / ends.min() > 4:          # ratios far apart: a log axis, 2x and 0.5x equally far
        from matplotlib.ticker import FuncFormatter
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_yticks(y, names, fontsize=7)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel(f"{labels[1]} / {labels[0]} median latency (below 1: {labels[1]} faster)")
    ax.set_title(f"{labels[1]} against {labels[0]}{' on ' + where if where else ''}: ratio of median latency per "
                 f"{what}, 95% interval\ngrey: no difference shown (the interval holds 1 or is unknown, or the "
                 f"ratio is within {NOISE_PCT:g}% of 1)"
                 + ("\nhollow: configurations whose engines differ (the builder chose other tactics)"
                    if other.any() else ""), fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return fig
