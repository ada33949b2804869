"""Rows of tests/bad_argument_table.py for perfkit.report (the demo's self-contained HTML report)."""
from __future__ import annotations

import os

import pandas as pd

from bad_argument_table import case
from bad_argument_values import WRITE_PATH, Lazy, family

import perfkit.report as report

TEXT = family(none=None, number=3, bytes=b"x", list=["x"])
SECTIONS = family(none=None, text="sections", number=3, frame_in_list=[pd.DataFrame()], text_in_list=["a section"],
                  dict={"heading": "h"})
GOOD_SECTIONS = Lazy(lambda w: [report.Section("tiny", "one row", table=pd.DataFrame({"a": [1]}), figure=w.figure())])

case("Section", lambda w, kw: report.Section(**kw),
     {"heading": "h", "text": "", "table": None, "figure": None, "alt": ""},
     {"heading": {**TEXT, "empty": "", "blank": "  "}, "text": TEXT, "alt": TEXT,
      "table": family(text="x", list=[[1, 2]], dict={"a": [1]}, number=3),
      "figure": family(text="chart.png", number=3, axes=Lazy(lambda w: w.figure().add_subplot()))})
case("render_html", lambda w, kw: report.render_html(**kw), {"title": "t", "sections": GOOD_SECTIONS},
     {"title": TEXT, "sections": SECTIONS})
case("write_report", lambda w, kw: report.write_report(**kw),
     {"path": Lazy(lambda w: os.path.join(w.tmp, "report.html")), "title": "t", "sections": GOOD_SECTIONS},
     {"path": WRITE_PATH, "title": TEXT, "sections": SECTIONS})
