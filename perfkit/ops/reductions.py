"""Reductions into a given output, with no temporary memory on either device.

On the CPU this is NumPy's reduction with ``out=``. On CUDA, CuPy's ``sum``/``max``/``min``/``prod``
go through CUB, which takes a few bytes of temporary storage from CuPy's pool on every call (outside
the context's plan, and inside a captured graph's private pool) — and CuPy 14.2's CUB ``amin`` with
``out=`` raises a TypeError. perfkit's own reduction kernels (CuPy ``ReductionKernel``) write
straight into ``out``, accumulate in float32 and propagate NaN as NumPy does. Integer inputs keep
CuPy's routines.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_NUMPY = {"sum": np.sum, "max": np.max, "min": np.min, "prod": np.prod}
_KERNELS: dict = {}
# -inf / +inf as bit patterns: no header needed in the kernel source
_SPEC = {
    "sum": ("a + b", "0"),
    "prod": ("a * b", "1"),
    "max": ("(isnan(a) || a > b) ? a : b", "__int_as_float(0xff800000)"),
    "min": ("(isnan(a) || a < b) ? a : b", "__int_as_float(0x7f800000)"),
}


def _kernel(kind: str) -> Any:
    k = _KERNELS.get(kind)
    if k is None:
        import cupy
        expr, identity = _SPEC[kind]
        k = _KERNELS[kind] = cupy.ReductionKernel(
            "T x", "F y", "static_cast<float>(x)", expr, "y = static_cast<F>(a)", identity,
            name=f"perfkit_reduce_{kind}", reduce_type="float")
    return k


def reduce_into(xp: Any, kind: str, x: Any, axes: Any, out: Any) -> Any:
    """``out[...] = kind(x, axis=axes, keepdims=True)``; ``out`` has the kept shape. Sums and products
    of float inputs accumulate in float32 (on CUDA whatever ``out``'s dtype; on the CPU pass a
    float32 ``out`` for that)."""
    if xp is np or x.dtype.kind != "f" or x.dtype.itemsize > 4:
        fn = _NUMPY[kind] if xp is np else getattr(xp, {"sum": "sum", "max": "amax", "min": "amin",
                                                        "prod": "prod"}[kind])
        if kind in ("sum", "prod") and out.dtype.kind == "f":
            return fn(x, axis=axes, keepdims=True, dtype=out.dtype, out=out)
        return fn(x, axis=axes, keepdims=True, out=out)
    return _kernel(kind)(x, axis=axes, keepdims=True, out=out)
