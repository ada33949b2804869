"""MemoryExplorer: device memory over time from a TrackingAllocator, a memory_events frame or a run:
phases, a time window, tags, stacked areas by tag with the builder's prediction, the running layer
beneath, and the largest blocks live in the window."""
from __future__ import annotations

import os
from functools import partial
from typing import Any

import pandas as pd

from ..arguments import frame as check_frame, number
from ..frames.schemas import MEMORY_EVENTS
from ..plots._axes import at_resolution, human_bytes
from ..plots.memory import DEFAULT_PHASES, PHASES, MemoryData, draw_memory
from ..plots.memory_blocks import largest_blocks
from ..plots.memory_data import time_range
from ._explorer import Explorer
from ._sources import as_run, read_parquet
from .figure_view import make_figure

WHAT = "MemoryExplorer"


def memory_source(source: Any, layer_times: Any, predicted_bytes: Any) -> tuple:
    """(events, layer_times, predicted bytes) from a TrackingAllocator, a memory_events frame or a run."""
    if hasattr(source, "events_since") and hasattr(source, "mark"):
        events = source.events
    elif isinstance(source, pd.DataFrame):
        events = check_frame(source, f"{WHAT}: source (a memory_events frame)", MEMORY_EVENTS.names)
    elif isinstance(source, (str, os.PathLike)) and os.fspath(source).endswith(".parquet"):
        file = os.fspath(source)
        events = check_frame(read_parquet(file, f"{WHAT}: source", "pass a file written by memory_events.to_parquet()"),
                             f"{WHAT}: source ({file})", MEMORY_EVENTS.names)
    else:
        run = as_run(source, f"{WHAT}: source (a TrackingAllocator, a memory_events frame, a run or its directory)")
        events = run.memory
        layer_times = run.layers if layer_times is None else layer_times
        if predicted_bytes is None:
            predicted_bytes = run.meta.get("predicted_device_memory_bytes")
    if predicted_bytes is None:                       # a recorded frame may say what the builder predicted
        predicted_bytes = events.attrs.get("predicted_device_memory_bytes")
    if layer_times is not None:
        check_frame(layer_times, f"{WHAT}: layer_times (run.layers, or None)", ("start_ns", "end_ns", "layer"))
    if predicted_bytes is not None:
        predicted_bytes = number(predicted_bytes, f"{WHAT}: predicted_bytes (engine.device_memory_bytes, or None)", 0)
    return events, layer_times, predicted_bytes


class MemoryExplorer(Explorer):
    """Explore device memory over time. ``source``: a TrackingAllocator (every event it recorded: build,
    context creation, inference), a memory_events frame or its ``.parquet`` file, or a run (``run.memory``
    with its layer times and the builder's prediction). ``layer_times`` and ``predicted_bytes`` add the
    running layer and the prediction line where the source does not carry them.

    Controls: ``phases`` (SelectMultiple), ``window`` (FloatRangeSlider, ms since the first event),
    ``tags`` (SelectMultiple), ``by_tag`` (stacked by tag or one area). The table lists the largest
    blocks live in the window."""

    css_class = "perfkit-memory-explorer"

    def __init__(self, source: Any, layer_times: Any = None, predicted_bytes: Any = None, interactive: Any = None):
        import ipywidgets as w
        self.events, self.layer_times, self.predicted_bytes = memory_source(source, layer_times, predicted_bytes)
        ev = self.events
        self.data = MemoryData(ev, self.layer_times)     # phases, levels, blocks: computed once, for every redraw
        self.t0_ns = self.data.first_ns()
        present = [PHASES[c] for c in sorted(set(self.data.phase.tolist()))]
        default = list(DEFAULT_PHASES) if set(DEFAULT_PHASES) & set(present) or not present else present
        dd = dict(style={"description_width": "initial"}, layout=w.Layout(width="auto"))
        self.phases = w.SelectMultiple(description="phases", options=list(PHASES), value=tuple(default), rows=3, **dd)
        tags = sorted(ev["tag"].dropna().unique().tolist())
        self.tags = w.SelectMultiple(description="tags", options=tags, value=tuple(tags), rows=min(5, len(tags) or 1),
                                     **dd)
        self.window = w.FloatRangeSlider(description="window (ms)", min=0.0, max=1.0, value=(0.0, 1.0), step=0.001,
                                         readout_format=".3f", continuous_update=False,
                                         style={"description_width": "initial"}, layout=w.Layout(width="520px"))
        self.by_tag = w.Checkbox(value=True, description="stack by tag", indent=False, layout=w.Layout(width="auto"))
        self._quiet = True
        self._build_box([[self.phases, self.tags, self.by_tag], [self.window]], [], interactive)
        self._reset_window()
        self._quiet = False
        self.phases.observe(self._on_phases, names="value")
        for c in (self.window, self.tags, self.by_tag):
            c.observe(lambda change: None if self._quiet else self.redraw(), names="value")
        self.redraw()

    def _reset_window(self) -> None:
        """The window slider spans the chosen phases (ms since the first event), all of it selected."""
        phases = self.phases.value or DEFAULT_PHASES
        lo, hi = time_range(self.data, tuple(p for p in PHASES if p in phases), self.t0_ns)
        hi = hi if hi > lo else lo + 1e-3
        s = self.window
        s.max, s.min = max(s.max, hi), min(s.min, lo)
        s.value = (lo, hi)
        s.min, s.max = lo, hi
        s.step = max((hi - lo) / 1000, 1e-6)

    def _on_phases(self, change: dict) -> None:
        self._quiet = True
        try:
            self._reset_window()
        finally:
            self._quiet = False
        self.redraw()

    def redraw(self) -> None:
        """Redraws the figure and the table for the chosen phases, window and tags."""
        phases, tags, window = self.phases.value, self.tags.value, tuple(self.window.value)
        if not phases or (not tags and self.tags.options):
            missing = "phase" if not phases else "tag"
            self.view.show(make_figure(lambda: _nothing(f"choose at least one {missing}")))
            self._set_table(pd.DataFrame())
            return
        window = window if window[1] > window[0] else None
        phases = tuple(p for p in PHASES if p in phases)
        tags = tuple(sorted(tags)) or None
        self.view.show(make_figure(lambda: draw_memory(self.data, None, self.by_tag.value, phases, window, tags,
                                                       self.predicted_bytes, self.t0_ns)))
        top = largest_blocks(self.data, window, 10, self.t0_ns, phases, tags) if len(self.events) else pd.DataFrame()
        at = partial(_at, width=window[1] - window[0] if window else 0.0)   # times as finely as the window needs
        self._set_table(top, {"size_bytes": human_bytes, "requested_bytes": human_bytes, "alloc_ms": at,
                              "free_ms": at})
        self.note.value = self._summary(top)

    def _summary(self, top: pd.DataFrame) -> str:
        if not len(top):
            return ""
        pred = f"; the builder predicted {human_bytes(self.predicted_bytes)}" if self.predicted_bytes else ""
        return (f"<p style='margin:2px'>largest block live in the window: {top['size'].iloc[0]} "
                f"({top['tag'].iloc[0]}, {top['owner'].iloc[0]}){pred}.</p>")


def _at(v: float, width: float) -> str:
    return at_resolution(float(v), width)


def _nothing(text: str) -> Any:
    from ..plots._axes import figure_and_axes
    fig, ax = figure_and_axes(None, (11, 2.0))
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, gid="message")
    ax.set_axis_off()
    return fig
