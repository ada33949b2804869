"""Rows of tests/bad_argument_table.py for the layers the ONNX importer needs (issue 10, helper A2), and
bad values for the parameters those layers added to existing adders (add_padding, add_softmax,
add_activation): their rows stay in the table, this file adds the new parameters' families to them."""
from __future__ import annotations

import numpy as np

from bad_argument_table import CASES
from bad_argument_values import CHOICE, family

NAN, INF = float("nan"), float("inf")


def extend(name: str, bad: dict) -> None:
    """Adds the families of parameters an existing adder gained to its row in the table."""
    CASES[name].bad.update(bad)


extend("Network.add_padding", {
    "mode": {**CHOICE, "numpy_only": "symmetric"},
    "value": family(nan=NAN, inf=INF, none=None, text="0", list=[1.0], array=np.ones(2))})
