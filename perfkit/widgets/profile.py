"""ProfileExplorer: a run's layer timeline with an inference range, stream filter, a sortable layer
table (time, share, achieved GFLOP/s and GB/s), hover details and a highlighted layer."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame
from ..plots import plot_layer_timeline
from ..plots._axes import human_bytes, human_ms
from ._explorer import Explorer, count_text
from ._sources import as_run, run_frame
from .figure_view import make_figure
from .profile_table import COLUMNS, layer_table

WHAT = "ProfileExplorer"
FADED = 0.18


class ProfileExplorer(Explorer):
    """Explore a profiling run: ``run`` is ``pk.profile``'s Run, a loaded run or a saved run directory.

    ``engine_layers`` (the engine's ``engine.layers`` frame) and ``build_log`` (``engine.build_log``)
    give each layer's FLOPs, bytes, fused members and tactic; by default the run's own (runs keep
    their engine's frames; a run saved before they did has none, and the table leaves those blank).
    Controls: ``iterations`` (IntRangeSlider), ``lanes`` (context / stream), ``sort`` and ``ascending``
    (the table), ``highlight`` (a layer; the others fade). ``hover`` shows the layer
    under the pointer (interactive mode); clicking a bar highlights its layer."""

    css_class = "perfkit-profile-explorer"

    def __init__(self, run: Any, engine_layers: Any = None, build_log: Any = None, interactive: Any = None):
        import ipywidgets as w
        self.run = as_run(run, f"{WHAT}: run")
        if engine_layers is None:
            engine_layers = run_frame(self.run, "engine_layers")
        if build_log is None:
            build_log = run_frame(self.run, "build_log")
        self.engine_layers = None if engine_layers is None else check_frame(
            engine_layers, f"{WHAT}: engine_layers (engine.layers)", ("layer", "origin", "flops", "bytes", "precision"))
        self.build_log = None if build_log is None else check_frame(
            build_log, f"{WHAT}: build_log (engine.build_log)", ("phase", "rule", "matched", "outcome"))
        layers = self.run.layers
        its = sorted(layers["iteration"].unique().tolist()) or [0]
        dd = dict(style={"description_width": "initial"}, layout=w.Layout(width="auto"))
        self.iterations = w.IntRangeSlider(description="iterations", min=its[0], max=its[-1],
                                           value=(max(its[0], its[-1] - 2), its[-1]), continuous_update=False,
                                           style={"description_width": "initial"}, layout=w.Layout(width="420px"))
        lanes = sorted({f"{c} / {s}" for c, s in zip(layers["context"], layers["stream"])})
        self.lanes = w.SelectMultiple(description="streams", options=lanes, value=tuple(lanes),
                                      rows=min(4, len(lanes) or 1), **dd)
        self.sort = w.Dropdown(description="sort by", options=list(COLUMNS), value="total_ms", **dd)
        self.ascending = w.Checkbox(value=False, description="ascending", indent=False, layout=w.Layout(width="auto"))
        names = layers.sort_values(["iteration", "index"])["layer"].drop_duplicates().tolist()
        self.highlight = w.Dropdown(description="highlight layer", options=["", *names], value="", **dd)
        self.hover = w.HTML(value="")
        self._bars: Any = None
        self._build_box([[self.iterations, self.lanes], [self.highlight, self.sort, self.ascending]],
                        [self.hover], interactive)
        self.view.on("motion_notify_event", self._on_move)
        self.view.on("button_press_event", self._on_click)
        self.iterations.observe(lambda c: self.redraw(), names="value")
        self.lanes.observe(lambda c: self.redraw(), names="value")
        self.sort.observe(lambda c: self._show_table(), names="value")
        self.ascending.observe(lambda c: self._show_table(), names="value")
        self.highlight.observe(lambda c: self._apply_highlight(), names="value")
        self.redraw()

    def shown_layers(self) -> pd.DataFrame:
        """The layer times the view shows: the chosen inferences on the chosen lanes."""
        df = self.run.layers
        lo, hi = self.iterations.value
        lane = df["context"].astype(str) + " / " + df["stream"].astype(str)
        return df[df["iteration"].between(lo, hi) & lane.isin(self.lanes.value)].reset_index(drop=True)

    def redraw(self) -> None:
        """Redraws the timeline and the table for the chosen inferences and lanes."""
        df = self.shown_layers()
        its = sorted(df["iteration"].unique().tolist())
        run = self.run
        kernels = run.kernels if len(run.kernels) else None
        memory = run.memory if len(run.memory) else None
        fig = make_figure(lambda: plot_layer_timeline(df, iterations=its or None, kernels=kernels,
                                                      memory_events=memory))
        self._index_bars(fig, df)
        self._fade()
        self.view.show(fig)                         # drawn once, highlight included
        self.full_table = layer_table(df, self.engine_layers, self.build_log)
        self._show_table()

    def _index_bars(self, fig: Any, df: pd.DataFrame) -> None:
        """The layer bars of the timeline (drawn one per row of ``df``, in its order) and their extents."""
        ax = fig.axes[0] if fig.axes else None
        bars = [p for p in ax.patches if p.get_gid() == "layer"] if ax is not None else []
        if len(bars) != len(df):
            self._bars = None
            return
        ext = np.array([[b.get_x(), b.get_x() + b.get_width(), b.get_y(), b.get_y() + b.get_height()] for b in bars])
        self._bars = (ax, bars, ext.reshape(-1, 4), df)
        self._per_inference = df.groupby("iteration")["ms"].sum().to_dict()

    def _show_table(self) -> None:
        t = self.full_table.sort_values(self.sort.value, ascending=self.ascending.value, kind="stable",
                                        na_position="last")
        ms = human_ms
        self._set_table(t.reset_index(drop=True), {
            "median_ms": ms, "ci_low_ms": ms, "ci_high_ms": ms, "total_ms": ms, "pct": lambda v: f"{v:.1f}%",
            "flops": count_text, "bytes": human_bytes, "batch_size": lambda v: f"{v:.0f}"})   # others: 4 figures

    def _apply_highlight(self) -> None:
        self._fade()
        self.view.refresh()

    def _fade(self) -> None:
        """The highlighted layer's bars outlined, the others faded (all plain when none is chosen)."""
        if self._bars is None:
            return
        _, bars, _, df = self._bars
        chosen = self.highlight.value
        for bar, name in zip(bars, df["layer"]):
            on = not chosen or name == chosen
            bar.set_alpha(1.0 if on else FADED)
            bar.set_edgecolor("black" if chosen and on else "white")
            bar.set_linewidth(1.2 if chosen and on else 0.3)

    def _layer_at(self, x: float, y: float) -> Any:
        """The row of the shown layer times drawn at data coordinates (x, y), or None."""
        if self._bars is None:
            return None
        _, _, ext, df = self._bars
        hit = np.nonzero((ext[:, 0] <= x) & (x <= ext[:, 1]) & (ext[:, 2] <= y) & (y <= ext[:, 3]))[0]
        return df.iloc[int(hit[0])] if len(hit) else None

    def _describe(self, row: Any) -> str:
        """The hover text of one layer execution: name, fused members, tactic, precision, time, share."""
        info = self.full_table.loc[self.full_table["layer"] == row["layer"]].iloc[0]
        members = info["origin"] or row["layer"]
        total = float(self._per_inference.get(row["iteration"], 0.0)) or 1.0
        return (f"<b>{row['layer']}</b> ({row['type']}) · inference {int(row['iteration'])} · "
                f"{human_ms(float(row['ms']))} = {100 * float(row['ms']) / total:.1f}% of that inference · "
                f"precision {info['precision']} · tactic {info['tactic'] or '—'} · fused members: {members}")

    def _on_move(self, event: Any) -> None:
        if self._bars is None or event.inaxes is not self._bars[0] or event.xdata is None:
            return
        row = self._layer_at(event.xdata, event.ydata)
        self.hover.value = "" if row is None else self._describe(row)

    def _on_click(self, event: Any) -> None:
        if self._bars is None or event.inaxes is not self._bars[0] or event.xdata is None:
            return
        row = self._layer_at(event.xdata, event.ydata)
        self.highlight.value = "" if row is None or row["layer"] == self.highlight.value else row["layer"]
