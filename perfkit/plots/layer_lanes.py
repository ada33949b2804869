"""Which lane of the layer timeline each piece of work goes to: one lane per (context, stream) for its
layers, one under it for the kernels those layers launched, and one per CUDA stream for work that ran
under no layer (perfkit's timer stamps, input copies), named with what it holds."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

STAMP_KERNEL = "perfkit_stamp"          # perfkit's one-thread kernel that reads the GPU clock (runtime/stamps.py)
# work that ran under no layer, by what it is: colour and legend text
OUTSIDE_COLORS = {"timer stamp": "#b0b0b0", "kernel": "#404040", "memcpy": "#8172b3", "memset": "#937860"}
OUTSIDE_NAMES = {"timer stamp": "timer stamp: perfkit's clock-reading kernel (~1 µs)",
                 "kernel": "kernel (e.g. an input copy)", "memcpy": "memcpy", "memset": "memset"}


def kernels_by_lane(kernels: Any, df: pd.DataFrame, iterations: list, t0: int, t1: int) -> Any:
    """The kernels of the shown inferences, each with the lane of the layer that launched it (the
    (context, stream) that layer ran on), or a lane of its CUDA stream when its layer is unknown."""
    if kernels is None or not len(kernels):
        return None
    k = kernels[kernels["iteration"].isin(iterations) | ((kernels["start_ns"] <= t1) & (kernels["end_ns"] >= t0))]
    k = k.reset_index(drop=True)
    kind = k["kind"].astype(str).where(k["kind"].isin(["memcpy", "memset"]), "kernel")
    k["what"] = kind.where(k["name"] != STAMP_KERNEL, "timer stamp")
    # a layer name may run in one inference on several lanes (two contexts, or streams): a kernel goes
    # to the execution of its layer that contains it (on the device's clock), else the nearest
    m = k[["iteration", "layer", "start_ns", "end_ns"]].reset_index().merge(
        df[["iteration", "layer", "start_ns", "end_ns", "context", "stream"]], on=["iteration", "layer"],
        suffixes=("", "_layer"))
    mid = (m["start_ns"] + m["end_ns"]) // 2
    m["miss"] = np.maximum(m["start_ns_layer"] - mid, 0) + np.maximum(mid - m["end_ns_layer"], 0)
    m["lag"] = (m["start_ns"] - m["start_ns_layer"]).abs()         # then the execution that began nearest
    best = m.sort_values(["index", "miss", "lag"], kind="stable").drop_duplicates("index").set_index("index")
    k = k.join(best[["context", "stream"]].rename(columns={"context": "lane_context", "stream": "lane_stream"}))
    known = k["lane_context"].notna()
    lane = [(c, s, True) if ok else ("", cs, True)
            for ok, c, s, cs in zip(known, k["lane_context"], k["lane_stream"], k["stream"])]
    return k.assign(lane=lane)


def lane_order(df: pd.DataFrame, kern: Any) -> dict:
    streams = sorted(set(zip(df["context"], df["stream"])))
    with_k = set(kern["lane"]) if kern is not None else set()
    order = []
    for c, s in streams:
        order.append((c, s, False))
        if (c, s, True) in with_k:
            order.append((c, s, True))
    order += sorted(k for k in with_k if k[0] == "")
    return {k: i for i, k in enumerate(order)}


def outside_kinds(kern: Any) -> list:
    """What the kernels outside every layer are ('timer stamp', 'kernel', 'memcpy', 'memset'), in the
    order of OUTSIDE_COLORS."""
    if kern is None or not len(kern):
        return []
    seen = set(kern.loc[kern["lane"].map(lambda lane: lane[0] == ""), "what"])
    return [w for w in OUTSIDE_COLORS if w in seen]


def outside_lane_name(stream: Any, kern: pd.DataFrame) -> str:
    """The lane of a CUDA stream's work outside every layer, named with what it holds in the window:
    'CUDA stream 7, no layer\n2 kernels' or '... 19 timer stamps (perfkit's)'."""
    counts = kern.loc[kern["lane"] == ("", stream, True), "what"].value_counts()
    said = [f"{counts[w]} {w}{'s' if counts[w] > 1 and not w.startswith('mem') else ''}" for w in OUTSIDE_COLORS
            if w in counts]
    return f"CUDA stream {stream}, no layer\n" + "\n".join(said)
