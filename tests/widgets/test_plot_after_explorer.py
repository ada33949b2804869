"""In a real Jupyter kernel, a plain ``plot_*`` cell after an explorer was shown still shows its chart as a PNG,
exactly as without the explorer (ipympl's import once switched pyplot's backend and the chart vanished)."""
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipympl")
pytest.importorskip("ipykernel")

SETUP = """import sys
sys.path.insert(0, {tests!r})
from explorer_data import sweep_frame
from perfkit.plots.sweep import plot_sweep
frame = sweep_frame()
get_ipython().run_line_magic("matplotlib", "inline")   # explorer_data chose Agg for the other tests"""
EXPLORER = "from perfkit.widgets import SweepExplorer\nSweepExplorer(frame, interactive=True)"
PLAIN = "fig = plot_sweep(frame)"
LAST = "plot_sweep(frame)"


def _outputs(cells: list) -> list:
    import os
    tests = os.path.dirname(__file__)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.format(tests=tests)) for c in cells])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    return [sorted(k for o in c.outputs for k in o.get("data", {})) for c in nb.cells]


def test_a_plot_cell_after_an_explorer_shows_its_png_as_without_it():
    without = _outputs([SETUP, PLAIN, LAST, "import matplotlib; matplotlib.get_backend()"])
    shown = _outputs([SETUP, EXPLORER, PLAIN, LAST, "import matplotlib; matplotlib.get_backend()"])
    assert "application/vnd.jupyter.widget-view+json" in shown[1]
    assert without[1] == shown[2] and "image/png" in shown[2]          # fig = plot_...(...)
    assert without[2] == shown[3] and "image/png" in shown[3]          # plot_...(...) as the last expression
    assert without[3] == shown[4]
