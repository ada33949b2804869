"""How layers are named and coloured wherever they are drawn (the layer timeline, the per-layer bars, the
running layer under the memory plot), and the time unit of a timeline."""
from __future__ import annotations

import colorsys
from typing import Any


def layer_colors(layers: Any) -> dict:
    """One colour per layer name, in the order given: hues a golden angle apart with alternating
    lightness, so that neighbours differ and no two layers share a colour, however many there are."""
    out = {}
    for i, name in enumerate(layers):
        h = (0.07 + i * 0.6180339887) % 1.0
        light, sat = ((0.62, 0.70), (0.45, 0.75), (0.55, 0.45))[i % 3]
        out[name] = colorsys.hls_to_rgb(h, light, sat)
    return out


def time_unit(span_ns: float) -> tuple:
    """(name, nanoseconds per unit) for an axis spanning ``span_ns``: µs below 2 ms, ms above."""
    return ("µs", 1e3) if span_ns < 2e6 else ("ms", 1e6)


def short_name(name: str, limit: int = 28) -> str:
    """A fused layer's first member with a '+' (its name lists them all); long names cut with '…'."""
    first = name.split(" + ")[0] + ("+" if " + " in name else "")
    return first if len(first) <= limit else first[:limit - 1] + "…"
