"""Charts of the fusion_benefit frame."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame
from ._axes import check_ax, figure_and_axes, human_ms

GRAY, GAIN, LOSS, NOISE = "#999999", "#2a7ab9", "#c0504d", "#dddddd"
CI = ("latency_delta_ci_low_ms", "latency_delta_ci_high_ms", "significant")


def plot_fusion_benefit(frame: pd.DataFrame, ax: Any = None) -> Any:
    """Horizontal bars: latency added when each rule is switched off (ms), with the layer count.

    With the intervals of ``fusion_benefit`` (frames since issue 9), each rule's bar carries its 95%
    interval as an error bar (gid ``fusion_ci``), and a rule whose interval includes 0 is drawn pale
    grey and labelled *not significant* instead of showing a sign the noise could have given it; a rule
    without an interval (fewer than 6 rounds) is drawn alike and labelled *no interval*."""
    check_frame(frame, "plot_fusion_benefit: frame", ("rule", "latency_ms", "latency_delta_ms", "layers"))
    check_ax(ax, "plot_fusion_benefit")
    fig, ax = figure_and_axes(ax, (8.5, 0.45 * len(frame) + 1.6))
    f = frame.iloc[::-1]
    d = f["latency_delta_ms"].to_numpy(dtype=float)
    has_ci = all(c in f.columns for c in CI)
    ref = np.array([r.startswith("(") for r in f["rule"]])
    noise = ~f["significant"].to_numpy(dtype=bool) & (f["rule"] != "(all rules)").to_numpy() if has_ci \
        else np.zeros(len(f), bool)
    colors = [NOISE if n else GRAY if r else (GAIN if x >= 0 else LOSS) for r, n, x in zip(ref, noise, d)]
    bars = ax.barh(f["rule"], d, color=colors)
    for bar, n in zip(bars, noise):
        bar.set_gid("fusion_noise" if n else "fusion_bar")
    lo, hi = (f[CI[0]].to_numpy(dtype=float), f[CI[1]].to_numpy(dtype=float)) if has_ci else (d, d)
    unknown = np.isnan(lo) | np.isnan(hi)
    lo, hi = np.where(unknown, d, lo), np.where(unknown, d, hi)     # no interval: no error bar, no reach
    left, right = _limits(d, lo, hi)
    shown_lo, shown_hi = np.clip(lo, left, right), np.clip(hi, left, right)
    if has_ci:                              # an interval beyond the axis is cut at its edge, its ends in words
        rows = np.flatnonzero((f["rule"].to_numpy() != "(all rules)") & ~unknown)
        ax.errorbar(d[rows], rows, xerr=[d[rows] - shown_lo[rows], shown_hi[rows] - d[rows]], fmt="none",
                    ecolor="black", elinewidth=1, capsize=3, gid="fusion_ci")
    for y, (x, n, low, top, is_noise, none) in enumerate(zip(d, f["layers"], lo, hi, noise, unknown)):
        text = f"{x:+.3f} ms, {n} layers"
        if is_noise:
            text = f"{'no interval (under 6 rounds)' if none else 'not significant'} ({text})"
        if top > right or low < left:
            text += f"; interval {_signed(low)} to {_signed(top)}"
        ax.annotate(text, (max(x, shown_hi[y], 0.0), y), xytext=(4, 0), textcoords="offset points",
                    ha="left", va="center", fontsize=8, color="#555555" if is_noise else "black")
    ax.axvline(0, color="black", lw=0.8)
    ref_ms = frame.loc[frame["rule"] == "(all rules)", "latency_ms"]
    label = "latency added with the rule switched off (ms)" + \
        (f"; all rules on: {float(ref_ms.iloc[0]):.3f} ms" if len(ref_ms) else "")
    if has_ci:
        rounds = frame.attrs.get("rounds")
        label += (f"\nerror bars: interval of at least 95%{f' ({rounds} interleaved rounds)' if rounds else ''}; "
                  "pale grey: not significant")
    ax.set_xlabel(label)
    a = frame.attrs
    ax.set_title(f"fusion benefit — {a.get('network', '')}, batch {a.get('batch_size', '?')}, {a.get('device', '')}")
    span = (right - left) or 1.0
    ax.set_xlim(left - 0.05 * span, right + 0.9 * span)
    return fig


def _limits(d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple:
    """The x range: every difference and interval, except that intervals reaching beyond four times the
    largest difference (one disturbed round can stretch an interval a hundredfold) are cut there."""
    reach = 4.0 * float(np.nanmax(np.abs(d))) if len(d) and np.nanmax(np.abs(d)) > 0 else np.inf
    left = float(min(0.0, np.nanmin(d), max(np.nanmin(lo), -reach)))
    right = float(max(0.0, np.nanmax(d), min(np.nanmax(hi), reach)))
    return left, right


def _signed(ms: float) -> str:
    return ("-" if ms < 0 else "+") + human_ms(abs(ms))
