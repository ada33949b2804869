"""Host<->device bandwidth against copy size, pageable against pinned memory (the ``transfers`` frame)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame
from ..frames.units import human_bytes
from ._axes import check_ax, figure_and_axes, say_empty, title_parts

STYLE = {"pinned": "-", "pageable": "--"}
COLOR = {"h2d": "C0", "d2h": "C1"}
WORDS = {"h2d": "host → device", "d2h": "device → host"}


def plot_transfers(frame: pd.DataFrame, ax: Any = None) -> Any:
    """Bandwidth (GB/s) against copy size (log scale), a line per direction and host memory (pinned solid,
    pageable dashed), the 95% interval of the median copy time as a band; the largest size's pinned over
    pageable ratio is written at the right end of each direction. The frame's note (what the CPU device
    measures) is the subtitle."""
    check_frame(frame, "plot_transfers: frame", ("direction", "memory", "size_bytes", "bandwidth_gb_s"))
    check_ax(ax, "plot_transfers")
    fig, ax = figure_and_axes(ax, (8.5, 4.5))
    if not len(frame):
        say_empty(ax, "transfers")
        return fig
    for (direction, memory), g in frame.groupby(["direction", "memory"], sort=False):
        g = g.sort_values("size_bytes")
        color = COLOR.get(direction, "C2")
        ax.plot(g["size_bytes"], g["bandwidth_gb_s"], STYLE.get(memory, "-"), marker="o", ms=4, color=color,
                label=f"{WORDS.get(direction, direction)}, {memory}", gid=f"{direction}_{memory}")
        if {"bandwidth_ci_low_gb_s", "bandwidth_ci_high_gb_s"} <= set(g.columns) and \
                g["bandwidth_ci_low_gb_s"].notna().all():
            ax.fill_between(g["size_bytes"], g["bandwidth_ci_low_gb_s"], g["bandwidth_ci_high_gb_s"], color=color,
                            alpha=0.15, lw=0, gid="interval")
    top = frame["size_bytes"].max()
    for direction, g in frame[frame["size_bytes"] == top].groupby("direction"):
        bw = g.set_index("memory")["bandwidth_gb_s"]
        if {"pinned", "pageable"} <= set(bw.index) and bw["pageable"] > 0:
            ax.annotate(f"pinned {bw['pinned'] / bw['pageable']:.2f}x", (top, bw["pinned"]), xytext=(6, 0),
                        textcoords="offset points", va="center", fontsize=8, color=COLOR.get(direction, "C2"),
                        gid="ratio")
    sizes = sorted(frame["size_bytes"].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [human_bytes(s) for s in sizes], rotation=30, ha="right")
    ax.minorticks_off()
    ax.set_xlim(sizes[0] / 1.3, sizes[-1] * 2.2)
    ax.set_ylim(bottom=0, top=float(np.nanmax(frame["bandwidth_gb_s"])) * 1.15)
    note = frame.attrs.get("note")
    import textwrap
    ax.set_xlabel("bytes per copy" + ("\n" + "\n".join(textwrap.wrap(note, 120)) if note else ""), fontsize=9)
    ax.set_ylabel("bandwidth (GB/s, 10⁹ bytes/s)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    spec = frame.attrs.get("device") or ""
    ax.set_title(f"copy bandwidth, pinned vs pageable — {spec} {' · '.join(title_parts(frame))}", fontsize=10)
    return fig
