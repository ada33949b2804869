"""perfkit.report: one self-contained HTML page, tables as HTML, figures as embedded PNGs, nothing external."""
import base64
import html
import html.parser
import io
import re

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import perfkit as pk  # noqa: E402
from perfkit.report import Section, render_html, write_report  # noqa: E402


class Page(html.parser.HTMLParser):
    """What a browser would see: tables as rows of cell texts, images' sources and alts, every URL-bearing attribute."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.images, self.urls, self.tags, self.headings = [], [], [], [], []
        self._cell = self._heading = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "action", "data", "poster") and v]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs)
        elif tag in ("h1", "h2"):
            self._heading = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None
        elif tag in ("h1", "h2"):
            self.headings.append(self._heading)
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._heading is not None:
            self._heading += data


def figure_with_line():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [3, 1, 2])
    ax.set_ylabel("latency (ms)")
    return fig


def test_tables_and_figures_are_inline_and_nothing_is_fetched(tmp_path):
    table = pd.DataFrame({"model": ["mnist_mlp", "<lenet>"], "batch_size": [1, 8], "latency_median_ms": [0.1234567, None],
                          "samples_per_s": [43550.4, 8.1]})
    fig = figure_with_line()
    path = write_report(tmp_path / "report.html", "perfkit & co", [
        Section("Sweep", "two rows", table=table),
        Section("Chart", figure=fig, alt="latency against batch"),
        Section("Words only", "a < b & c"),
    ])
    assert path == str(tmp_path / "report.html")
    text = open(path, encoding="utf-8").read()
    page = Page(text)
    assert page.headings == ["perfkit & co", "Sweep", "Chart", "Words only"]
    (rows,) = page.tables
    assert rows == [["model", "batch_size", "latency_median_ms", "samples_per_s"], ["mnist_mlp", "1", "0.1235", "43,550"],
                    ["<lenet>", "8", "–", "8.1"]]                # no exponents: 43,550 rather than 4.355e+04
    (img,) = page.images
    assert img["alt"] == "latency against batch"
    assert img["src"].startswith("data:image/png;base64,")
    png = base64.b64decode(img["src"].split(",", 1)[1])
    want = io.BytesIO()
    fig.savefig(want, format="png", dpi=100)
    assert png == want.getvalue()                     # the figure itself, not a placeholder
    assert all(u.startswith("data:image/png;base64,") for u in page.urls)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", text.replace("<!DOCTYPE html>", ""))   # no external URL
    assert "@import" not in text and "url(" not in text
    assert "a &lt; b &amp; c" in text                 # text is escaped, never markup
    assert '<td class="num">0.1235</td>' in text and "<td>mnist_mlp</td>" in text   # numbers right, text left


def test_the_demo_report_shows_its_sweep_and_figures(tmp_path):
    from perfkit.cli import main
    assert main(["demo", "--device", "cpu", "--out", str(tmp_path), "--batch-sizes", "1,2", "--precisions", "fp32",
                 "--models", "mnist_mlp", "--min-time", "0.01"]) == 0
    (run,) = list(tmp_path.iterdir())
    text = open(run / "report.html", encoding="utf-8").read()
    page = Page(text)
    sweep = pd.read_parquet(run / "sweep.parquet")
    assert page.headings[1] == "How far to trust these numbers"       # first: the trust paragraph, from the rows
    assert f"reached {sweep['host_load_1m'].max():.1f} on {sweep['host_cpus'].max()} cores" in text
    for sentence in pk.bench.sweep_disturbances(sweep):
        assert html.escape(sentence) in text
    header, *rows = next(t for t in page.tables if "latency_median_ms" in t[0] or "median ms" in " ".join(t[0]))
    assert len(rows) == len(sweep) == 2
    assert {r[header.index("batch size")] for r in rows} == {"1", "2"}
    def size(png: bytes) -> tuple:                   # width and height from the PNG header
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    saved = sorted(size(f.read_bytes()) for f in run.iterdir() if f.suffix == ".png")
    embedded = sorted(size(base64.b64decode(i["src"].removeprefix("data:image/png;base64,"))) for i in page.images)
    assert len(saved) == 4 and embedded == saved     # every chart the demo wrote is in the page, at its pixel size
    assert all(u.startswith("data:") for u in page.urls)


BAD = {
    "heading not text": lambda: Section(3),
    "empty heading": lambda: Section("  "),
    "text not text": lambda: Section("h", text=None),
    "table not a frame": lambda: Section("h", table=[[1, 2]]),
    "figure not a figure": lambda: Section("h", figure="chart.png"),
    "alt not text": lambda: Section("h", alt=1),
    "title not text": lambda: render_html(None, []),
    "sections not a list": lambda: render_html("t", "sections"),
    "a section that is a frame": lambda: render_html("t", [pd.DataFrame()]),
    "path missing": lambda: write_report(None, "t", []),
    "path an int": lambda: write_report(3, "t", []),
    "path in a missing folder": lambda: write_report("/nonexistent/folder/report.html", "t", []),
}


@pytest.mark.parametrize("call", list(BAD.values()), ids=list(BAD))
def test_bad_arguments_are_refused_with_a_perfkit_error(call):
    with pytest.raises(pk.PerfkitError) as e:
        call()
    assert str(e.value)
