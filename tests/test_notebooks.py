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
    # every call of a perfkit plot function shows its chart once, and nothing else draws one
    code = [c for c in nb.cells if c.cell_type == "code"]
    calls = [len(re.findall(r"\bplot_\w+\(", c.source)) for c in code]
    images = [sum("image/png" in o.get("data", {}) for o in c.get("outputs", [])) for c in code]
    assert sum(calls) > 0 and images == calls, list(zip(calls, images))
