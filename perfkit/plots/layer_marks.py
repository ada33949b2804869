"""Where each inference starts on a layer timeline: a dashed separator and an ``inference N`` label, placed in time
order and only where the label fits before the next one. When inferences of different lanes overlap in time (several
contexts or streams), each lane gets its own separators and labels, so they read in order along the lane."""
from __future__ import annotations

from typing import Any

import pandas as pd

FONT = 7                 # points
CHAR_EM = 0.6            # a digit or letter is about 0.6 em wide
SEPARATOR = dict(color="0.35", lw=0.7, ls=(0, (3, 2)), gid="separator")


def iteration_marks(ax: Any, mem_ax: Any, df: pd.DataFrame, lanes: dict, t0: int, per: float) -> None:
    """Separators and labels of the inferences in ``df`` (the layer rows shown) on ``ax``, after layout."""
    spans = df.groupby("iteration").agg(start=("start_ns", "min"), end=("end_ns", "max")).sort_values("start")
    overlap = bool((spans["start"].to_numpy()[1:] < spans["end"].cummax().to_numpy()[:-1]).any())
    if not overlap:
        starts = [(it, (s - t0) / per) for it, s in spans["start"].items()]
        for _, x in starts[1:]:
            for a in (ax, mem_ax) if mem_ax is not None else (ax,):
                a.axvline(x, **SEPARATOR)
        for it, x in _fitting(ax, starts):
            ax.annotate(f"inference {it}", (x, 1.0), xycoords=("data", "axes fraction"), xytext=(2, 2),
                        textcoords="offset points", fontsize=FONT, color="0.3", va="bottom", gid="iteration")
        return
    size = FONT - 1
    firsts = df.groupby(["context", "stream", "iteration"])["start_ns"].min().reset_index().sort_values("start_ns")
    for (c, s), g in firsts.groupby(["context", "stream"], sort=False):
        y = lanes[(c, s, False)]
        starts = [(it, (v - t0) / per) for it, v in zip(g["iteration"], g["start_ns"])]
        for _, x in starts[1:]:
            ax.plot([x, x], [y - 0.48, y + 0.48], **SEPARATOR)
        for it, x in _fitting(ax, starts, size):
            ax.annotate(f"inference {it}", (x, y - 0.36), xytext=(2, 0), textcoords="offset points", fontsize=size,
                        color="0.3", va="bottom", gid="iteration", annotation_clip=True)


def _fitting(ax: Any, starts: list, size: float = FONT) -> list:
    """The ``(iteration, x)`` of ``starts`` (in time order) whose label ends before the next kept one begins and
    before the axes' right edge; the others are left unlabelled (their separators still show)."""
    x_px = abs(ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]) or 1.0
    right = ax.get_xlim()[1]
    dpi = ax.figure.dpi
    kept, free_from = [], float("-inf")
    for it, x in starts:
        width = (len(f"inference {it}") * CHAR_EM * size * dpi / 72 + 6) / x_px
        if x >= free_from and (x + width <= right or not kept):
            kept.append((it, x))
            free_from = x + width
    return kept
