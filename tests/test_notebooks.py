"""Notebooks are committed without outputs and executed here, top to bottom."""
import glob
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_notebooks_are_numbered_and_the_readme_names_each():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert names and names == sorted(set(re.findall(r"\b(\d\d_\w+\.ipynb)", readme)))
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_committed_without_outputs(path):
    nb = json.load(open(path))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and not cell.get("execution_count"), f"{path}: clear outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.dirname(path)}})  # as in Jupyter
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # every call of a perfkit plot function shows its chart once as a PNG, every explorer made is shown once as a
    # widget that was really created (its model is in the saved widget state), and nothing else draws a chart
    code = [c for c in nb.cells if c.cell_type == "code"]
    calls = [len(re.findall(r"\bplot_\w+\(", c.source)) for c in code]
    images = [sum("image/png" in o.get("data", {}) for o in c.get("outputs", [])) for c in code]
    assert sum(calls) + sum(len(EXPLORER.findall(c.source)) for c in code) > 0
    assert images == calls, list(zip(calls, images))
    made = [len(EXPLORER.findall(c.source)) for c in code]
    shown = [len(explorer_views(c, nb)) for c in code]
    assert shown == made, list(zip(made, shown))


# the constructors of perfkit.widgets; a notebook shows each explorer in the cell that makes it
EXPLORER = re.compile(r"\b(?:SweepExplorer|ProfileExplorer|MemoryExplorer|compare)\(")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def explorer_views(cell, nb) -> list:
    """The widget views a cell shows whose model is an explorer's box (CSS class perfkit-explorer/perfkit-compare
    in the widget state nbclient saved); progress bars and other widgets do not count."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    ids = [o["data"][WIDGET_VIEW]["model_id"] for o in cell.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]
    missing = [i for i in ids if i not in state]
    assert not missing, f"widget views without a saved model (the widget was never created): {missing}"
    return [i for i in ids if {"perfkit-explorer", "perfkit-compare"} & set(state[i]["state"].get("_dom_classes", []))]
