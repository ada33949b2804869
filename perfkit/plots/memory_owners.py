"""Which execution context held the memory: each context's lifetime (its first event to the free that left it
holding nothing) drawn as a named bar near the top of the memory plot, so a drop between two contexts (a sweep's
context closed, the profile's created later) reads as two lifetimes, not as one context shrinking."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._axes import at_resolution

PREFIX = "context:"
ROWS = 4                     # lifetimes stacked in this many rows, then the rows are reused
TOP, STEP = 0.92, 0.055      # axes fractions: the first row's height (under the phase names) and between rows


def lifetimes(ev: pd.DataFrame) -> pd.DataFrame:
    """One row per context owner in ``ev``: ``owner``, ``start_ns`` (its first event), ``end_ns`` (the free that
    left it holding nothing, NaN while it still holds memory at the end of the frame), in order of start."""
    if "owner" not in ev or not len(ev):
        return pd.DataFrame(columns=["owner", "start_ns", "end_ns"])
    own = ev["owner"].astype(str)
    ctx = ev[own.str.startswith(PREFIX)]
    rows = []
    for owner, g in ctx.groupby(ctx["owner"].astype(str), sort=False):
        sign = g["action"].map({"alloc": 1, "free": -1}).fillna(0).to_numpy()
        held = np.cumsum(sign * g["size_bytes"].to_numpy())
        empty = np.flatnonzero((held == 0) & (sign < 0))
        ended = len(empty) and empty[-1] == len(g) - 1
        rows.append({"owner": owner.removeprefix(PREFIX), "start_ns": float(g["ts_ns"].iloc[0]),
                     "end_ns": float(g["ts_ns"].iloc[-1]) if ended else np.nan})
    return pd.DataFrame(rows, columns=["owner", "start_ns", "end_ns"]).sort_values("start_ns", kind="stable")


def shown(ev: pd.DataFrame, span: tuple) -> pd.DataFrame:
    """The lifetimes of the contexts that held memory at some time in ``span`` (ns)."""
    life = lifetimes(ev)
    return life[(life["start_ns"] <= span[1]) & ~(life["end_ns"] < span[0])]


def headroom(ev: pd.DataFrame, span: tuple) -> float:
    """How much of the axes' height (a fraction) the lifetime rows take above the data."""
    return STEP * min(len(shown(ev, span)), ROWS) + (0.04 if len(shown(ev, span)) else 0.0)


def context_lifetimes(ax: Any, ev: pd.DataFrame, span: tuple, xa: Any, t0: int) -> None:
    """Draws the lifetime of each context that lived in ``span`` (ns) on ``ax`` (x through the TimeAxis ``xa``):
    a bar from creation to its last free, or to the axis's end while still alive, with its name and times (ms,
    the axis's unit)."""
    life = shown(ev, span)
    if not len(life):
        return
    trans = ax.get_xaxis_transform()
    right = ax.get_xlim()[1]

    def ms(ns: float) -> str:
        return at_resolution((ns - t0) / 1e6, (span[1] - span[0]) / 1e6)
    for k, r in enumerate(life.itertuples()):
        y = TOP - STEP * (k % ROWS)
        alive = np.isnan(r.end_ns)
        x0 = float(xa(max(r.start_ns, span[0])))
        x1 = right if alive else float(xa(min(r.end_ns, span[1])))
        ax.plot([x0, x1], [y, y], transform=trans, color="0.25", lw=1.2, marker="|", ms=6, gid="context_life",
                solid_capstyle="butt")
        when = f"created {ms(r.start_ns)} ms, " + ("still held at the end" if alive else f"freed {ms(r.end_ns)} ms")
        ax.annotate(f"{r.owner}: {when}", (x0, y), xycoords=trans, xytext=(2, 1.5), textcoords="offset points",
                    fontsize=6.5, color="0.2", va="bottom", gid="context_label")
