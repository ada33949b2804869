"""In a real Jupyter kernel, a plain ``plot_*`` cell after an explorer was shown still shows its chart as a PNG,
exactly as without the explorer. Two ways it broke: ipympl's import switched pyplot's backend, and the explorer's
first figure, made under ``plt.ioff()``, was where the kernel chose its inline backend (which turns interactive
mode on), so leaving ioff turned it off for good."""
import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipympl")
pytest.importorskip("ipykernel")

SWEEP = os.path.join(os.path.dirname(__file__), "..", "..", "data", "h200_2026-11-29", "sweep.parquet")
SETUP = f"import pandas as pd\nfrom perfkit.plots import plot_sweep\nframe = pd.read_parquet({SWEEP!r})"
EXPLORER = "from perfkit.widgets import SweepExplorer\nSweepExplorer(frame, interactive=True)"
EMPTY = "from perfkit.widgets import SweepExplorer\nexplorer = SweepExplorer()\nexplorer"   # as notebook 05
FILL = "for row in frame.to_dict('records'):\n    explorer(row)\nexplorer.finish()"
PLAIN = "fig = plot_sweep(frame)"
LAST = "plot_sweep(frame)"
STATE = "import matplotlib, matplotlib.pyplot as plt\n(matplotlib.get_backend(), plt.isinteractive())"


def _outputs(cells: list) -> list:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    return [sorted(k for o in c.outputs for k in o.get("data", {})) for c in nb.cells], \
        [o["data"].get("text/plain") for o in nb.cells[-1].outputs if "data" in o]


def test_a_plot_cell_after_an_explorer_shows_its_png_as_without_it():
    without, state = _outputs([SETUP, PLAIN, LAST, STATE])
    for first in ([EXPLORER], [EMPTY, FILL]):                 # an explorer of a frame; one filled by a sweep
        shown, after = _outputs([SETUP, *first, PLAIN, LAST, STATE])
        assert "application/vnd.jupyter.widget-view+json" in shown[1]
        assert shown[-3] == without[1] and "image/png" in shown[-3]        # fig = plot_...(...)
        assert shown[-2] == without[2] and "image/png" in shown[-2]        # plot_...(...) as the last expression
        assert after == state, (after, state)                             # the backend and interactive mode
