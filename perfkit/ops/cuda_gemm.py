"""A batched GEMM that shares one weight matrix across the batch, as a single cuBLAS call.

CuPy's ``matmul`` with a broadcast operand costs about 120 us of host time on an H200 host (it is
not a single asynchronous launch); convolution (im2col) multiplies one weight matrix by every
sample's column matrix, so it goes through ``cublas<t>gemmStridedBatched`` with a zero stride for
the weights instead: one launch, asynchronous on the current stream, float32 accumulation.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_CUDA_R_32F, _CUDA_R_16F = 0, 2
_COMPUTE_32F = 68
_GEMM_DEFAULT = -1
_state: dict = {"ok": None}


def shared_weight_gemm(w: Any, x: Any, out: Any) -> bool:
    """out[b] = w @ x[b] for C-contiguous w (K, R), x (B, R, P), out (B, K, P). Returns False when the
    fast path does not apply (the caller falls back to ``matmul``)."""
    if _state["ok"] is False or w.dtype != x.dtype or w.dtype != out.dtype or w.dtype not in (np.float32, np.float16):
        return False
    if not (w.flags.c_contiguous and x.flags.c_contiguous and out.flags.c_contiguous):
        return False
    try:
        import cupy
        from cupy.cuda import device
        from cupy_backends.cuda.libs import cublas
        handle = device.get_cublas_handle()
        cublas.setStream(handle, cupy.cuda.get_current_stream().ptr)
        bsz, r, p = x.shape
        k = w.shape[0]
        one, zero = np.array(1, np.float32), np.array(0, np.float32)
        # row-major out[b] (K x P) = w (K x R) @ x[b] (R x P)  <=>  column-major out^T = x^T @ w^T
        if w.dtype == np.float32:
            cublas.sgemmStridedBatched(handle, 0, 0, p, k, r, one.ctypes.data, x.data.ptr, p, r * p, w.data.ptr, r, 0,
                                       zero.ctypes.data, out.data.ptr, p, k * p, bsz)
        else:
            cublas.gemmStridedBatchedEx(handle, 0, 0, p, k, r, one.ctypes.data, x.data.ptr, _CUDA_R_16F, p, r * p,
                                        w.data.ptr, _CUDA_R_16F, r, 0, zero.ctypes.data, out.data.ptr, _CUDA_R_16F,
                                        p, k * p, bsz, _COMPUTE_32F, _GEMM_DEFAULT)
        _state["ok"] = True
        return True
    except Exception:       # an older CuPy or cuBLAS without these entry points: use matmul from now on
        _state["ok"] = False
        return False
