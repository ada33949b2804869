"""SweepExplorer: any metric of a sweep against batch size, precision or streams, coloured and faceted
by model, precision or device, with intervals, a table of the points shown and what to distrust;
updated live when passed to ``pk.sweep(..., on_row=explorer)``."""
from __future__ import annotations

import html
import threading
import time
from typing import Any

import pandas as pd

from ..arguments import number
from ..bench.rounds import sweep_disturbances
from ..frames.schemas import SWEEP, SWEEP_LAYERS
from ..plots._axes import human_bytes, human_ms
from ..plots._sweep_points import plot_sweep_points
from . import sweep_data as data
from ._explorer import Explorer
from .figure_view import make_figure


class SweepExplorer(Explorer):
    """Explore a sweep (see perfkit.widgets.sweep_data.read_sweep for what ``sweep`` may be).

    Controls (ipywidgets, attributes): ``metric``, ``layer``, ``x``, ``color``, ``facet``, ``precision``
    (which precisions are shown), ``logx``, ``logy``, ``bands``. ``table`` lists the points shown with
    their intervals and flags; ``note`` says when a shown point is unstable or was measured under load.
    ``explorer(row)`` adds one sweep row, ``explorer.add_layers(frame)`` per-layer rows: pass the
    explorer as ``pk.sweep(..., on_row=explorer)``. Live redraws wait ``redraw_interval_s`` between them;
    ``finish()`` draws what waits."""

    css_class = "perfkit-sweep-explorer"

    def __init__(self, sweep: Any = None, interactive: Any = None, redraw_interval_s: float = 0.5):
        import ipywidgets as w
        self.frame, self.layers_frame = data.read_sweep(sweep)
        self.redraw_interval_s = number(redraw_interval_s, "SweepExplorer: redraw_interval_s (seconds)", 0, 3600)
        self._lock = threading.RLock()
        self._pending = False
        self._last_draw = 0.0
        self._refreshing = threading.get_ident()     # the thread whose own option writes are not the user's
        self._asked: dict = {}                         # control -> value the user chose (from any thread)
        dd = dict(style={"description_width": "initial"}, layout=w.Layout(width="auto"))
        self.metric = w.Dropdown(description="metric", **dd)
        self.layer = w.Dropdown(description="layer", options=[""], value="", **dd)
        self.x = w.Dropdown(description="x axis", **dd)
        self.color = w.Dropdown(description="colour by", options=list(data.GROUPS), value="model", **dd)
        self.facet = w.Dropdown(description="facet by", options=["none", *data.GROUPS], value="none", **dd)
        self.precision = w.SelectMultiple(description="precision", rows=3, **dd)
        self.logx = w.Checkbox(value=True, description="log x", indent=False, layout=w.Layout(width="auto"))
        self.logy = w.Checkbox(value=False, description="log y", indent=False, layout=w.Layout(width="auto"))
        self.bands = w.Checkbox(value=True, description="95% bands", indent=False, layout=w.Layout(width="auto"))
        self._build_box([[self.metric, self.layer, self.x, self.color, self.facet],
                         [self.precision, self.logx, self.logy, self.bands]], [], interactive)
        self._refresh_options()
        for c in (self.metric, self.layer, self.x, self.color, self.facet, self.precision, self.logx, self.logy,
                  self.bands):
            c.observe(self._on_control, names="value")
        self._refreshing = None
        self.redraw()

    # live rows --------------------------------------------------------------------------------------
    def __call__(self, row: dict) -> None:
        """Adds one row of the sweep frame (a dict, as ``pk.sweep`` passes to ``on_row``) and redraws,
        at most once per ``redraw_interval_s``: rows inside the interval wait for the next row after it
        or for :meth:`finish` (which ``pk.sweep`` calls after each network's rows)."""
        new = SWEEP.frame([row])
        with self._lock:
            self.frame = new if not len(self.frame) else pd.concat([self.frame, new], ignore_index=True)
        self._soon()

    def add_layers(self, frame: Any) -> None:
        """Adds per-layer rows (a ``sweep_layers`` frame, as ``pk.sweep(..., layers=True)`` gives per
        configuration, just before that configuration's row). Redraws like a new row when per-layer time
        is shown; otherwise the row that follows redraws (and offers the per-layer metric)."""
        frame = data._checked(frame, SWEEP_LAYERS, "SweepExplorer.add_layers: frame")
        with self._lock:
            old = self.layers_frame
            self.layers_frame = frame.copy() if old is None or not len(old) else pd.concat([old, frame],
                                                                                          ignore_index=True)
        if self.metric.value == "layer_time_ms":
            self._soon()

    def finish(self) -> None:
        """Draws the rows waiting for the throttle, if any (``pk.sweep`` calls this after each network's
        rows, in its own thread, between measurements)."""
        with self._lock:
            if self._pending:
                self.redraw()

    # drawing ----------------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Redraws the figure, the table and the note from the data and the controls now."""
        with self._lock:
            self._pending = False
            self._refreshing = threading.get_ident()
            try:
                self._refresh_options()
                self._apply_asked()
            finally:
                self._refreshing = None
            pts = self.points()
            args = dict(metric=self.metric.value, x=self.x.value, color=self.color.value, facet=self.facet.value,
                        bands=self.bands.value, logx=self.logx.value, logy=self.logy.value, layer=self.layer.value)
            self.view.show(make_figure(lambda: plot_sweep_points(pts, **args)))
            self._table(pts)
            self._last_draw = time.monotonic()

    def points(self) -> pd.DataFrame:
        """The points the current view shows (keys, value, interval, trust columns)."""
        return data.points(self.frame, self.layers_frame, self.metric.value, self.layer.value, self.precision.value)

    def _on_control(self, change: dict) -> None:
        """A control changed: by the option refresh of the thread redrawing (ignored), or by the user, from
        any thread (the Jupyter comm thread while the sweep thread draws): the choice is recorded, so that a
        refresh running meanwhile cannot overwrite it, and drawn once the lock is free."""
        if self._refreshing == threading.get_ident():
            return
        self._asked[change["owner"]] = change["new"]
        self.redraw()

    def _apply_asked(self) -> None:
        """Sets again the choices the user made while options were refreshed (those still offered)."""
        while self._asked:
            control, value = self._asked.popitem()
            offered = [o[1] if isinstance(o, tuple) else o for o in getattr(control, "options", ())]
            if isinstance(value, tuple):
                value = tuple(v for v in value if v in offered)
            elif hasattr(control, "options") and value not in offered:
                continue
            if control.value != value:
                control.value = value

    def _soon(self) -> None:
        """Redraws now if the last redraw is ``redraw_interval_s`` old, else leaves the data pending: no
        drawing thread competes with the sweep's measurements."""
        with self._lock:
            if time.monotonic() - self._last_draw >= self.redraw_interval_s:
                self.redraw()
            else:
                self._pending = True

    def _refresh_options(self) -> None:
        """Offers what the data holds now (live rows add precisions, layers and metrics), keeping choices."""
        metrics = data.metrics_of(self.frame, self.layers_frame)
        _set_options(self.metric, [(data.METRICS[m][0], m) for m in metrics], "latency_median_ms")
        _set_options(self.x, [(data.X_AXES[x], x) for x in data.x_axes_of(self.frame)], "batch_size")
        names = data.layer_names(self.layers_frame)
        _set_options(self.layer, names or [""], names[0] if names else "")
        self.layer.disabled = self.metric.value != "layer_time_ms"
        known = data.precisions_of(self.frame, self.layers_frame)
        old = list(self.precision.options)
        chosen = [p for p in self.precision.value if p in known] + [p for p in known if p not in old]
        if known != old:
            self.precision.options = known
        if tuple(chosen) != tuple(self.precision.value):
            self.precision.value = tuple(chosen)

    def _table(self, pts: pd.DataFrame) -> None:
        label, kind = data.METRICS[self.metric.value]
        fmt = human_bytes if kind == "bytes" else (human_ms if kind == "ms" else (lambda v: f"{v:,.0f}"))
        t = pts[[c for c in (*data.KEYS, "streams") if c in pts.columns]].copy()
        t[label] = pts["value"].map(fmt)
        t["95% interval"] = [f"{fmt(lo)} – {fmt(hi)}" if pd.notna(lo) else ""
                             for lo, hi in zip(pts["low"], pts["high"])]
        t["spread %"] = pts["latency_cv_pct"].map(lambda v: f"{v:.1f}" if pd.notna(v) else "")
        t["unstable"] = pts["unstable"].map(lambda v: "UNSTABLE" if v is True or v == 1 else "")
        t["host load"] = [f"{lo:.1f} on {int(c)} cores" if pd.notna(lo) and pd.notna(c) else ""
                          for lo, c in zip(pts["host_load_1m"], pts["host_cpus"])]
        self._set_table(t)
        self.note.value = self._trust_sentence(pts)

    def _trust_sentence(self, pts: pd.DataFrame) -> str:
        """What to distrust among the configurations shown (perfkit.bench.sweep_disturbances: spread, host
        load, throttled clocks, failures), as a warning line; '' when nothing was disturbed."""
        frame = self.frame
        if not len(frame):
            return ""
        keys = list(data.KEYS)
        shown = frame.set_index(keys).index.isin(pts.set_index(keys).index) if len(pts) else False
        failed = (frame["error"].fillna("") != "") if "error" in frame.columns else False
        rows = frame[(shown | failed) & frame["precision"].isin(list(self.precision.value))]
        said = sweep_disturbances(rows) if len(rows) else []
        if not said:
            return ""
        items = "".join(f"<li>{html.escape(s)}</li>" for s in said)
        return (f"<div style='color:#a33;margin:2px'>⚠ read these points with care:<ul style='margin:0'>{items}</ul>"
                "</div>")


def _set_options(control: Any, options: list, default: Any) -> None:
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    current = [tuple(o) if isinstance(o, (tuple, list)) else o for o in control.options]
    if current != [tuple(o) if isinstance(o, (tuple, list)) else o for o in options]:
        keep = control.value if control.value in values else (default if default in values else values[0])
        control.options = options
        control.value = keep
