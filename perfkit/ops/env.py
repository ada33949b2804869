"""The environment an op computes in: array module, workspace, precision helpers."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


class Env:
    """Per-context execution environment handed to ``Op.compute``.

    ``scratch(shape, dtype)`` carves arrays out of the context's workspace (reset before each
    layer); ``matmul(a, b, out)`` multiplies with float32 accumulation whatever the storage dtype
    (on CUDA one cuBLAS call on the context's own handle, see ``cuda_gemm.py``).
    """

    def __init__(self, xp: Any, device_kind: str, workspace: Any = None, blas_workspace: Any = None):
        self.xp = xp
        self.device_kind = device_kind
        self._ws = workspace          # 1-D uint8 array or None
        self._ws_offset = 0
        self._blas_ws = blas_workspace
        self._blas = None

    @property
    def blas(self) -> Any:
        """This context's cuBLAS handle (CUDA only), created on first use."""
        if self._blas is None:
            from .cuda_gemm import Blas
            self._blas = Blas(self._blas_ws)
        return self._blas

    def close(self) -> None:
        if self._blas is not None:
            self._blas.close()
            self._blas = None

    def reset_scratch(self) -> None:
        self._ws_offset = 0

    def scratch(self, shape: tuple, dtype: Any) -> Any:
        dtype = np.dtype(dtype)
        n = math.prod(shape) * dtype.itemsize
        start = (self._ws_offset + 255) // 256 * 256
        if self._ws is None or start + n > self._ws.nbytes:
            # the op under-declared its workspace: fall back to a fresh array rather than fail
            return self.xp.empty(shape, dtype)
        self._ws_offset = start + n
        return self._ws[start:start + n].view(dtype).reshape(shape)

    def matmul(self, a: Any, b: Any, out: Any) -> Any:
        xp = self.xp
        if self.device_kind == "cpu" and out.dtype == np.float16:
            # NumPy has no BLAS path for float16: multiply in float32, store float16
            np.copyto(out, np.matmul(a.astype(np.float32), b.astype(np.float32)), casting="unsafe")
            return out
        if a.dtype != out.dtype:
            a = a.astype(out.dtype)
        if b.dtype != out.dtype:
            b = b.astype(out.dtype)
        if self.device_kind == "cuda" and self.blas.gemm(a, b, out):
            return out
        return xp.matmul(a, b, out=out)
