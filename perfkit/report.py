"""One self-contained HTML page of tables and figures (the demo's ``report.html``).

The page needs no server and reaches nothing outside itself: the style is inline, there is no script,
tables are HTML tables and figures are PNGs embedded as base64 ``data:`` URIs. Every text is escaped.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import os
from typing import Any, Sequence

from .arguments import path as check_path
from .errors import ArgumentError

__all__ = ["Section", "render_html", "write_report"]

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
p { max-width: 60em; white-space: pre-line; }
table { border-collapse: collapse; margin: 0.6em 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } .num { text-align: right; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ArgumentError(f"{what} must be a str, not {type(value).__name__} {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Section:
    """One block of a report: a heading, a paragraph of plain text, and optionally a table (a DataFrame,
    shown without its index) and a figure (a matplotlib Figure, embedded as PNG; ``alt`` describes it,
    the heading by default)."""

    heading: str
    text: str = ""
    table: Any = None
    figure: Any = None
    alt: str = ""

    def __post_init__(self) -> None:
        import pandas as pd
        if not _text(self.heading, "Section: heading").strip():
            raise ArgumentError("Section: heading must not be empty; name what the section shows")
        _text(self.text, "Section: text")
        _text(self.alt, "Section: alt")
        if self.table is not None and not isinstance(self.table, pd.DataFrame):
            raise ArgumentError(f"Section: table must be a pandas DataFrame or None, not {type(self.table).__name__}")
        if self.figure is not None:
            from matplotlib.figure import Figure
            if not isinstance(self.figure, Figure):
                raise ArgumentError(f"Section: figure must be a matplotlib Figure or None (plot functions return one), "
                                    f"not {type(self.figure).__name__}")


def _table_html(table: Any) -> str:
    """The frame as an HTML table without its index: numbers right-aligned to 4 significant digits (43,550 rather
    than 4.355e+04), text left."""
    import pandas as pd

    from .plots._axes import four

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
            return "–"
        return four(v) if isinstance(v, float) else html.escape(str(v))
    numeric = [pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
               for c in table.columns]
    attr = [' class="num"' if n else "" for n in numeric]
    head = "".join(f"<th{a}>{html.escape(str(c))}</th>" for c, a in zip(table.columns, attr))
    rows = ["<tr>" + "".join(f"<td{a}>{cell(v)}</td>" for v, a in zip(r, attr)) + "</tr>"
            for r in table.itertuples(index=False, name=None)]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure_html(figure: Any, alt: str) -> str:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=100)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _sections(sections: Any, what: str) -> list:
    if isinstance(sections, (str, bytes)) or not isinstance(sections, Sequence):
        raise ArgumentError(f"{what}: sections must be a list of perfkit.report.Section, not {type(sections).__name__}")
    bad = [type(s).__name__ for s in sections if not isinstance(s, Section)]
    if bad:
        raise ArgumentError(f"{what}: every section must be a perfkit.report.Section, not {bad[0]}; "
                            "wrap tables and figures in Section(heading, text, table=..., figure=...)")
    return list(sections)


def render_html(title: str, sections: Sequence[Section]) -> str:
    """The report as one HTML document: ``title`` as its heading, then each section in order."""
    title = _text(title, "render_html: title")
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for s in _sections(sections, "render_html"):
        parts.append(f"<section><h2>{html.escape(s.heading)}</h2>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        if s.table is not None:
            parts.append(_table_html(s.table))
        if s.figure is not None:
            parts.append(_figure_html(s.figure, s.alt or s.heading))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(path: str | os.PathLike, title: str, sections: Sequence[Section]) -> str:
    """Writes :func:`render_html` of ``title`` and ``sections`` to ``path`` (UTF-8) and returns the path."""
    path = check_path(path, "write_report: path")
    page = render_html(title, sections)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    except OSError as exc:
        raise ArgumentError(f"write_report: cannot write {path!r}: {exc.strerror or exc}; choose a writable path") from None
    return path
