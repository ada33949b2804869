"""Numeric precisions: storage dtypes, tolerances, representable ranges, weight conversion.

A foundation module: it imports only NumPy, ``ml_dtypes`` and ``perfkit.errors``, so the builder,
the runtime and the engine-file loader can all agree on what a precision stores without importing
each other.

Precision is *storage* precision (weights and activations); arithmetic accumulates in float32.

- ``fp32``: ``float32``.
- ``fp16``: ``float16`` (IEEE half: largest finite value 65504).
- ``bf16``: ``bfloat16`` from ``ml_dtypes`` (8 exponent bits like float32, 8 significand bits), a
  real two-byte type, so a bf16 engine's memory figures are half of fp32's. ``np.dtype("bfloat16")``
  resolves once ``ml_dtypes`` is imported, which this module does. NumPy reports its ``kind`` as
  ``"V"``, so test float-ness with :func:`is_float`, never with ``dtype.kind == "f"``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import ml_dtypes
import numpy as np

PRECISIONS = ("fp32", "fp16", "bf16")
#: the order in which tables, legends and plots list precisions: fp32 first (the reference), then by
#: significand bits, fp16 (10) before bf16 (7). The one definition: plots and widgets sort by it.
PRECISION_ORDER = ("fp32", "fp16", "bf16")

bfloat16 = np.dtype(ml_dtypes.bfloat16)

#: dtype name stored in plans and tensor specs, per precision
STORAGE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
#: the precision a storage dtype name belongs to
PRECISION_OF = {v: k for k, v in STORAGE.items()}

FLOAT_DTYPES = frozenset(STORAGE.values()) | {"float64"}


class Tolerance(NamedTuple):
    """Elementwise agreement expected against a float64 reference: ``|a - b| <= atol + rtol * |b|``."""
    rtol: float
    atol: float


#: per storage precision; fp16 keeps 11 significant bits (eps 2**-10), bf16 8 (eps 2**-7). The
#: relative parts allow some rounding steps through a layer; the absolute parts cover values near 0.
TOLERANCE = {"fp32": Tolerance(1e-4, 1e-5), "fp16": Tolerance(2e-2, 2e-3), "bf16": Tolerance(6e-2, 1e-2)}

#: the largest finite value each precision stores
FINITE_MAX = {"fp32": float(np.finfo(np.float32).max), "fp16": float(np.finfo(np.float16).max),
              "bf16": float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)}


def storage_dtype(precision: str) -> np.dtype:
    """The NumPy dtype that stores ``precision`` (``bfloat16`` is the ``ml_dtypes`` type)."""
    return np.dtype(STORAGE[precision])


def as_dtype(dtype: Any) -> np.dtype:
    """``np.dtype`` of a name or type, with ``"bfloat16"`` resolved (this module registers it)."""
    return np.dtype(dtype)


def is_float(dtype: Any) -> bool:
    """True for float16/32/64 and bfloat16 (whose NumPy kind is ``"V"``)."""
    d = np.dtype(dtype)
    return d.kind == "f" or d == bfloat16


def overflow(values: np.ndarray, precision: str) -> tuple[int, float]:
    """How many finite ``values`` become infinite when stored in ``precision``, and the largest
    magnitude among them (0, 0.0 when every finite value is representable).

    The test is the cast itself, so it is exact at the rounding boundary (fp16 stores 65519 as
    65504 but 65520 as inf).
    """
    if precision == "fp32" or not is_float(values.dtype) or values.size == 0:
        return 0, 0.0
    src = np.asarray(values)
    with np.errstate(over="ignore"):
        cast = src.astype(storage_dtype(precision))
    bad = np.isfinite(src) & ~np.isfinite(cast.astype(np.float32))
    n = int(np.count_nonzero(bad))
    return (n, float(np.max(np.abs(src[bad].astype(np.float64))))) if n else (0, 0.0)


def convert_weight(w: np.ndarray, precision: str) -> np.ndarray:
    """A contiguous copy of a float weight in ``precision``'s storage dtype (integers unchanged).

    Values beyond the precision's range become infinite: check them with :func:`overflow` first.
    """
    if not is_float(w.dtype):
        return np.ascontiguousarray(w)
    dtype = storage_dtype(precision)
    if w.dtype == dtype:
        return np.ascontiguousarray(w)
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(np.asarray(w).astype(dtype))
