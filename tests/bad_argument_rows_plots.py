"""Rows of tests/bad_argument_table.py for the plot functions of perfkit.plots added with the explorers (issue 9)."""
from __future__ import annotations

from bad_argument_table import case  # noqa: F401
from bad_argument_values import AX, CHOICE, COUNT, FLAG, FRAME, Lazy, family  # noqa: F401
