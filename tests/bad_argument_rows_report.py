"""Rows of tests/bad_argument_table.py for perfkit.report (the demo's self-contained HTML report)."""
from __future__ import annotations

from bad_argument_table import case  # noqa: F401
from bad_argument_values import FRAME, Lazy, family  # noqa: F401
