"""Rows of tests/bad_argument_table.py for perfkit.widgets: the notebook explorers."""
from __future__ import annotations

from bad_argument_table import case  # noqa: F401
from bad_argument_values import AX, CHOICE, COUNT, FLAG, FRAME, Lazy, family  # noqa: F401
