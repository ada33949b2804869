"""compare(a, b): two sweeps, or two runs, side by side as ratios b/a of median latency with their
95% intervals, a figure of the ratios with a line at 1, and a table that says which differences are
not significant."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame
from ..errors import ArgumentError
from ..plots._axes import human_ms
from ..plots._ratios import plot_ratios
from ..profiling.data import RunData
from ._explorer import Shown, html_table
from ._sources import as_run
from .figure_view import FigureView, make_figure
from .ratios import NOISE_PCT, run_ratios, sweep_ratios
from .sweep_data import read_sweep

WHAT = "compare"


class Comparison(Shown):
    """What :func:`compare` returns: ``widget`` (display it), ``figure``, ``table`` (a DataFrame of
    ratios, intervals, ``significant`` and ``verdict``) and ``table_html`` (its ipywidgets.HTML)."""

    def __init__(self, table: pd.DataFrame, labels: tuple, what: str, interactive: Any, where: str = ""):
        import ipywidgets as w
        self.table, self.labels = table, labels
        self.view = FigureView(interactive)
        self.mode = self.view.mode
        self.view.show(make_figure(lambda: plot_ratios(table, labels, what, where)))
        a, b = f"{labels[0]} (median)", f"{labels[1]} (median)"
        fmt = {a: human_ms, b: human_ms, **{c: "{:.3f}".format for c in ("ratio", "ratio_low", "ratio_high")}}
        self.table_html = w.HTML(html_table(table.rename(columns={"a_ms": a, "b_ms": b}), fmt))
        n, sig = len(table), int(table["significant"].sum()) if len(table) else 0
        self.note = w.HTML(f"<p style='margin:2px'>{n} {what}(s) compared: {sig} differ significantly; {n - sig} "
                           "cannot be told apart (the 95% interval of their ratio contains 1 or is unknown, or the "
                           f"ratio is within {NOISE_PCT:g}% of 1).{_unmatched(table)}{_drift(table)}"
                           f"{_other_engines(table)}</p>")
        self.widget = w.VBox([self.note, self.view.widget, self.table_html])
        self.widget.add_class("perfkit-explorer")
        self.widget.add_class("perfkit-compare")


def compare(a: Any, b: Any, labels: Any = None, interactive: Any = None) -> Comparison:
    """Two sweeps (frames, files or folders, as SweepExplorer takes) matched per (model, precision,
    batch size), or two runs (Run, loaded run or run directory) matched per layer: the ratio b/a of
    median latency per match with a 95% interval (sweeps: from the rows' intervals; runs: a bootstrap
    over the layers' samples); a ratio whose interval contains 1, is unknown (rows timed in fewer than 6
    rounds have no interval) or lies within 3% of 1 is not counted as a difference. ``labels``
    names a and b (default: their device, precision or run id, the first that differs; else 'a', 'b'). Two runs
    of the same engine (same layers, precisions and tactics) are said to differ only by the machine's drift
    between them, and layers profiled in one run only are named. Sweeps whose rows carry ``tactics_id`` get
    an ``engine`` column ('same' or 'other' builder choices), and the note counts the configurations whose
    engines differ, since their ratios hold the engines' difference as well as the machines'."""
    labels = _labels(labels, a, b)
    if _is_run(a) and _is_run(b):
        ra, rb = as_run(a, f"{WHAT}: a"), as_run(b, f"{WHAT}: b")
        for r, n in ((ra, "a"), (rb, "b")):
            check_frame(r.layers, f"{WHAT}: {n}'s layer times", ("layer", "iteration", "ms"))
        table = run_ratios(ra.layers, rb.layers, labels)
        table.attrs["same_engine"] = _same_engine(ra.engine_layers, rb.engine_layers)
        return Comparison(table, labels, "layer", interactive,
                          _shared(ra.meta.get("engine"), rb.meta.get("engine"), ra.meta.get("device_name"),
                                  rb.meta.get("device_name")))
    if _is_run(a) or _is_run(b):
        raise ArgumentError(f"{WHAT}: a and b must both be sweeps or both be runs, not "
                            f"{type(a).__name__} and {type(b).__name__}")
    fa, fb = read_sweep(_sweep_only(a, "a")), read_sweep(_sweep_only(b, "b"))
    devices = [f[0].attrs.get("device_name") or "/".join(sorted(map(str, f[0]["device"].unique()))) for f in (fa, fb)]
    return Comparison(sweep_ratios(fa[0], fb[0], labels), labels, "configuration", interactive, _shared(*devices))


def _same_engine(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two runs' engines execute the same layers with the same precisions and tactics (False where a
    run was saved without its engine)."""
    cols = [c for c in ("layer", "type", "precision", "tactic") if c in a.columns and c in b.columns]
    if not len(a) or not len(b) or "layer" not in cols:
        return False
    key = lambda f: sorted(map(tuple, f[cols].astype(str).to_numpy()))  # noqa: E731
    return key(a) == key(b)


def _drift(table: pd.DataFrame) -> str:
    """A warning when both runs ran the same engine: their differences are the machine's, not the engines'."""
    if not table.attrs.get("same_engine"):
        return ""
    return (" Both runs executed the same engine layers with the same precisions and tactics, one after the other: "
            "any difference here is the machine's drift between the two runs (other work, clocks, a cold start), "
            "not the engines'. For a fair comparison time them in interleaved rounds: pk.sweep, then compare the "
            "two sweeps.")


def _other_engines(table: pd.DataFrame) -> str:
    """A sentence when some configurations of two sweeps timed engines whose builder chose differently."""
    if "engine" not in table.columns:
        return ""
    other = table[table["engine"] == "other"]
    if not len(other):
        return ""
    sig = int(other["significant"].sum())
    return (f" {len(other)} of {len(table)} configurations ran engines whose builder chose other tactics (their "
            f"tactics_id differs; {sig} of them differ significantly): their ratios hold the engines' difference as "
            "well as the machines'. On one GPU model, sweeping both with one timing cache "
            "(pk.sweep(..., timing_cache=PATH)) takes each layer's tactic from one timing.")


def _unmatched(table: pd.DataFrame) -> str:
    """A sentence naming the layers only one run profiled (not compared), '' when every layer matched."""
    import html
    only = {k: v for k, v in table.attrs.get("unmatched", {}).items() if v}
    if not only:
        return ""
    parts = "; ".join(f"only in {k}: " + ", ".join(v[:4]) + (f" and {len(v) - 4} more" if len(v) > 4 else "")
                      for k, v in only.items())
    return html.escape(f" Not compared, as each is in one run only (engines built differently, or saved before "
                       f"a layer was renamed; the sum of layers still compares the whole inference): {parts}.")


def _shared(*pairs: Any) -> str:
    """What both sides share, for the title: each (a, b) pair's value where a equals b."""
    return " · ".join(str(a) for a, b in zip(pairs[::2], pairs[1::2]) if a and a == b)


def _is_run(x: Any) -> bool:
    import os
    if isinstance(x, RunData):
        return True
    return isinstance(x, (str, os.PathLike)) and os.path.isfile(os.path.join(os.fspath(x), "run.json"))


def _sweep_only(x: Any, name: str) -> Any:
    if x is None:
        raise ArgumentError(f"{WHAT}: {name} must be a sweep frame, a sweep file or folder, or a run; not None")
    return x[0] if isinstance(x, tuple) and len(x) == 2 else x


def _labels(labels: Any, a: Any, b: Any) -> tuple:
    if labels is None:
        return _default_labels(a, b)
    if not isinstance(labels, (tuple, list)) or len(labels) != 2 or not all(isinstance(s, str) and s for s in labels) \
            or labels[0] == labels[1]:
        raise ArgumentError(f"{WHAT}: labels must be two different non-empty names for a and b, such as "
                            f"('cpu', 'cuda'), not {labels!r}")
    return tuple(labels)


def _default_labels(a: Any, b: Any) -> tuple:
    """What tells a from b: their device, precision or run id, the first that differs; else 'a' and 'b'."""
    def said(x: Any, key: str) -> str:
        if isinstance(x, RunData):
            return str(x.meta.get(key) or "")
        frame = x[0] if isinstance(x, tuple) and x else x
        if not isinstance(frame, pd.DataFrame):
            return ""
        if frame.attrs.get(key):
            return str(frame.attrs[key])
        col = "device" if key == "device_name" else key
        vals = frame[col].dropna().unique() if col in frame.columns else []
        return str(vals[0]) if len(vals) == 1 else ""
    for key in ("device_name", "precision", "run_id"):
        la, lb = said(a, key), said(b, key)
        if la and lb and la != lb:
            return (la, lb)
    return ("a", "b")
