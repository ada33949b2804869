"""What every explorer shares: its box of controls, figure and table, how a notebook shows it, and
the HTML table of a frame."""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from ..plots._axes import four
from .figure_view import FigureView


class Shown:
    """An object a notebook shows through its ``widget`` (ipywidgets), with the figure of its ``view``."""

    widget: Any
    view: FigureView

    @property
    def figure(self) -> Any:
        """The matplotlib Figure shown now (a new one after every redraw)."""
        return self.view.figure

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)


class Explorer(Shown):
    """An explorer is an object with ``widget`` (the ipywidgets box a notebook displays), ``figure``
    (the matplotlib figure shown now) and ``table_frame`` (the rows of its table)."""

    css_class = "perfkit-explorer"

    def _build_box(self, controls: list, below: list, interactive: Any) -> None:
        import ipywidgets as w
        self.view = FigureView(interactive)
        self.mode = self.view.mode
        self.note = w.HTML(value="")
        self.table = w.HTML(value="", layout=w.Layout(width="100%", max_height="380px", overflow="auto"))   # scrolls
        self.table_frame = pd.DataFrame()
        rows = [w.HBox(list(row), layout=w.Layout(flex_flow="row wrap")) for row in controls]
        self.widget = w.VBox([*rows, self.note, self.view.widget, *below, self.table])
        self.widget.add_class("perfkit-explorer")
        self.widget.add_class(self.css_class)

    def _set_table(self, frame: pd.DataFrame, formats: dict | None = None) -> None:
        self.table_frame = frame
        self.table.value = html_table(frame, formats or {})


def html_table(frame: pd.DataFrame, formats: dict, max_rows: int = 200) -> str:
    """``frame`` as a compact HTML table (escaped), each column through ``formats[column]`` when given, other
    numbers to 4 significant figures without an exponent; at most ``max_rows`` rows, with a line saying how many
    were left out. A table wider than its box scrolls sideways inside it."""
    if frame is None or frame.empty:
        return "<p style='color:#666'>no rows</p>"
    shown = frame.head(max_rows)
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(str(c))}</th>" for c in shown.columns)
    body = []
    for _, row in shown.iterrows():
        cells = []
        for c in shown.columns:
            v = row[c]
            text = "" if _missing(v) else formats[c](v) if c in formats else _cell(v)
            cells.append(f"<td style='padding:1px 8px;white-space:nowrap'>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p>{len(frame) - max_rows} more rows not shown</p>" if len(frame) > max_rows else ""
    return (f"<div style='max-width:100%;overflow:auto'><table class='perfkit-table' style='border-collapse:"
            f"collapse;font-size:12px'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
            f"{more}")


def _cell(v: Any) -> str:
    """A cell's text: floats to 4 significant figures (43,550, 2,726, 0.1234), anything else as it is."""
    if isinstance(v, (float, np.floating)):
        return four(float(v))
    return str(v)


def count_text(n: float) -> str:
    """A count in SI steps to 4 significant figures: 43550 -> '43.55 k', 2.1e9 -> '2.1 G'."""
    for step, name in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= step:
            return f"{four(n / step)} {name}"
    return four(float(n))


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
