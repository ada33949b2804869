"""The largest blocks of a memory_events frame live in a time window: the MemoryExplorer's table."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame, positive_int
from ._axes import human_bytes
from .memory_data import PHASES, MemoryData, events_arg, phases_arg, t0_arg, tags_arg, window_arg


def top_allocations(memory_events: pd.DataFrame, window_ms: Any = None, n: int = 10, t0_ns: Any = None,
                    phases: Any = None, tags: Any = None) -> pd.DataFrame:
    """The ``n`` largest blocks live at any time in ``window_ms=(start, end)`` (None: the whole frame),
    largest first: when each was allocated and freed (ms since ``t0_ns``, by default the first event
    of ``phases`` as in :func:`plot_memory`; free_ms NaN: still held at the end of the frame), its
    size, tag, owner, running layer and phase. ``phases`` (None: all) keeps the blocks allocated in
    those phases, ``tags`` (None: all) the blocks of those tags."""
    what = "top_allocations"
    ev = events_arg(memory_events, what)
    check_frame(ev, f"{what}: memory_events", ("ptr", "requested_bytes"))
    window = window_arg(window_ms, what)
    n = positive_int(n, f"{what}: n (how many blocks)")
    phases = PHASES if phases is None else phases_arg(phases, what)
    return largest_blocks(MemoryData(ev), window, n, t0_arg(t0_ns, what), phases, tags_arg(tags, what))


def largest_blocks(data: MemoryData, window: Any, n: int, t0: Any, phases: tuple, tags: Any) -> pd.DataFrame:
    """top_allocations on checked arguments (``t0`` None: the first event of ``phases``)."""
    if t0 is None:
        ts = data.ts[np.isin(data.phase, [PHASES.index(p) for p in phases])]
        t0 = int(ts[0]) if len(ts) else 0
    b = data.blocks()                                 # largest first
    keep = b["phase"].isin(phases).to_numpy().copy()
    if tags is not None:
        keep &= b["tag"].isin(tags).to_numpy()
    if window is not None:
        lo, hi = t0 + window[0] * 1e6, t0 + window[1] * 1e6
        keep &= (b["alloc_ns"] <= hi).to_numpy() & (b["free_ns"].isna() | (b["free_ns"] >= lo)).to_numpy()
    top = b[keep].head(n)
    out = pd.DataFrame({"alloc_ms": (top["alloc_ns"].to_numpy() - t0) / 1e6,
                        "free_ms": (top["free_ns"].to_numpy() - t0) / 1e6})
    out["lifetime_ms"] = out["free_ms"] - out["alloc_ms"]
    for c in ("size_bytes", "requested_bytes", "tag", "owner", "layer", "phase"):
        out[c] = top[c].to_numpy()
    out.insert(4, "size", pd.Series([human_bytes(v) for v in out["size_bytes"]], dtype="string"))
    return out
