"""The explorers need ipywidgets (the ``notebook`` extra): checked once, when perfkit.widgets is imported."""
from __future__ import annotations

import importlib.util

from ..errors import PerfkitError


class NotebookDependencyError(PerfkitError, ImportError):
    """perfkit.widgets was imported without ipywidgets installed."""


def require_ipywidgets() -> None:
    """Raises NotebookDependencyError, saying how to install it, when ipywidgets cannot be imported."""
    if importlib.util.find_spec("ipywidgets") is None:
        raise NotebookDependencyError(
            "perfkit.widgets needs ipywidgets 8, which is not installed; install the notebook extra: "
            "pip install perfkit[notebook] (ipympl, also in that extra, makes the figures interactive)")
