"""Reading parquet files whose bytes may be damaged: every value checked before a frame is returned.

``pandas.read_parquet`` decodes a string column lazily: a file whose bytes were damaged inside a string
(a flipped byte that leaves invalid UTF-8) reads without complaint, and fails later, wherever a string is
first used, with an ``ArrowException`` that names neither the file nor the fix. pyarrow's full validation
finds such values (and broken offsets) at once, so the caller's own error for an unreadable file covers it.
"""
from __future__ import annotations

import io
import os
from typing import Any

import pandas as pd


def read_parquet(source: Any) -> pd.DataFrame:
    """``pandas.read_parquet(source)`` (a path, or the file's bytes), after ``pyarrow`` validated every value;
    raises what pyarrow or pandas raise for a file that is not sound parquet."""
    import pyarrow.parquet as pq
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        pq.read_table(io.BytesIO(data)).validate(full=True)
        return pd.read_parquet(io.BytesIO(data))
    path = os.fspath(source)
    pq.read_table(path).validate(full=True)
    return pd.read_parquet(path)
