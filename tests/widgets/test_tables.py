"""Explorer tables: numbers in human units to 4 significant figures (never 4.355e+04), and a table wider than
its box scrolls sideways inside it instead of being cut off."""
import re

import pandas as pd
import pytest

pytest.importorskip("ipywidgets")

from perfkit.widgets._explorer import count_text, html_table  # noqa: E402


def _cells(html):
    return re.findall(r"<td[^>]*>([^<]*)</td>", html)


def test_numbers_read_to_four_figures_without_exponents():
    frame = pd.DataFrame({"gflops_per_s": [43550.4, 2725.93, 0.0123456], "n": [1, 2, 3], "name": ["a", "b", "c"]})
    cells = _cells(html_table(frame, {}))
    assert cells[0::3] == ["43,550", "2726", "0.01235"] and cells[1::3] == ["1", "2", "3"]
    assert not any("e+" in c or "e-" in c for c in cells)
    assert [count_text(v) for v in (43550.0, 2.1e9, 512.0)] == ["43.55 k", "2.1 G", "512"]


def test_a_wide_table_scrolls_within_its_box():
    html = html_table(pd.DataFrame({f"column_{i}": [1.5] for i in range(30)}), {})
    (style,) = re.findall(r"<div style='([^']*)'><table", html)
    assert "overflow:auto" in style and "max-width:100%" in style


def test_memory_table_times_are_as_fine_as_the_window_needs():
    import os
    import matplotlib
    matplotlib.use("Agg")
    from perfkit.widgets import MemoryExplorer
    path = os.path.join(os.path.dirname(__file__), "..", "..", "data", "h200_2026-11-29", "memory_resnet_small.parquet")
    e = MemoryExplorer(path, interactive=False)                      # context creation within 0.7 ms
    rows = [_cells(r) for r in e.table.value.split("<tr>")[2:]]
    alloc = [r[0] for r in rows]
    assert len(alloc) >= 3 and len(set(alloc)) == len(alloc), alloc   # blocks µs apart read apart
    assert all(len(a.split(".")[1]) == 3 for a in alloc), alloc           # ms to the µs, as the window needs
