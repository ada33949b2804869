"""Notebook explorers (ipywidgets 8): SweepExplorer, ProfileExplorer, MemoryExplorer and compare.

Figures are perfkit.plots figures, interactive through ipympl in JupyterLab and static PNGs elsewhere
(see figure_view.py). Importing this package needs ipywidgets (``pip install perfkit[notebook]``);
``import perfkit`` does not import it.
"""
from ._require import NotebookDependencyError, require_ipywidgets

require_ipywidgets()

from .compare import compare  # noqa: E402
from .memory import MemoryExplorer  # noqa: E402
from .profile import ProfileExplorer  # noqa: E402
from .sweep import SweepExplorer  # noqa: E402

__all__ = ["SweepExplorer", "ProfileExplorer", "MemoryExplorer", "compare", "NotebookDependencyError"]
