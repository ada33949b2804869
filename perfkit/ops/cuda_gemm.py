"""GEMMs on the GPU as single cuBLAS calls, on a handle and workspace that belong to one context.

Every matrix product of an engine (convolution after im2col, fully connected, MLP stages,
MatrixMultiply) is one ``cublas<t>gemmStridedBatched`` call: operands may be transposed views and
leading (batch) dimensions may broadcast (stride 0), so no operand is copied first. float16 goes
through ``cublasGemmStridedBatchedEx`` with float32 accumulation, and so does float32 with TF32 allowed
(``CUBLAS_COMPUTE_32F_FAST_TF32``); strict float32 is ``cublasSgemmStridedBatched``.

The calls go through nvmath-python's cuBLAS bindings when they are installed: they are plain
asynchronous launches that CUDA stream capture accepts (CuPy's own cuBLAS wrapper refuses to run
while a stream is being captured), so engines can be replayed as CUDA graphs. Without nvmath-python
CuPy's wrapper is used and graphs are off. Each context has its own handle with its own workspace
(carved from the context's planned workspace), so two contexts on two streams never share cuBLAS
scratch memory and a captured GEMM never asks cuBLAS for memory.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

_CUDA_R_32F, _CUDA_R_16F = 0, 2
_COMPUTE_32F = 68
_COMPUTE_32F_FAST_TF32 = 77     # float32 in and out, products on TF32 Tensor Cores
_GEMM_DEFAULT = -1
_OP_N, _OP_T = 0, 1
BLAS_WORKSPACE_BYTES = 4 << 20      # per context; enough for cuBLAS's split-K kernels at our sizes


def _nvmath_cublas() -> Any:
    try:
        from nvmath.bindings import cublas
        return cublas
    except Exception:           # not installed, or its libcublas failed to load
        return None


class _CupyCublas:
    """CuPy's cuBLAS wrapper under nvmath's names (eager use only: it refuses stream capture)."""

    def __init__(self) -> None:
        from cupy_backends.cuda.libs import cublas
        self.set_stream = cublas.setStream
        self.sgemm_strided_batched = cublas.sgemmStridedBatched
        self.gemm_strided_batched_ex = cublas.gemmStridedBatchedEx


class Blas:
    """A cuBLAS handle bound to a workspace; ``gemm`` launches on the current CuPy stream."""

    def __init__(self, workspace: Any = None, tf32: bool = False) -> None:
        self.lib = _nvmath_cublas()
        self.tf32 = bool(tf32)
        self.capturable = self.lib is not None        # True: the calls may be captured into CUDA graphs
        self.workspace = workspace                    # 1-D uint8 CuPy array or None
        self.handle = 0
        self._stream = None
        self._own = self.lib is not None
        self._one = np.ones(1, np.float32)
        self._zero = np.zeros(1, np.float32)
        self._alpha, self._beta = self._one.ctypes.data, self._zero.ctypes.data

    def _bind(self) -> Any:
        import cupy
        sp = cupy.cuda.get_current_stream().ptr
        if self.handle == 0:
            if self._own:
                self.handle = self.lib.create()
            else:
                from cupy.cuda import device
                self.lib = _CupyCublas()
                self.handle = device.get_cublas_handle()
        if sp != self._stream:
            self.lib.set_stream(self.handle, sp)
            if self._own:               # setting the stream resets the workspace to cuBLAS's own pool
                ws = self.workspace
                self.lib.set_workspace(self.handle, 0 if ws is None else ws.data.ptr, 0 if ws is None else ws.nbytes)
            self._stream = sp
        return self.lib

    def close(self) -> None:
        if self._own and self.handle:
            try:
                self.lib.destroy(self.handle)
            except Exception:
                pass
        self.handle = 0

    def gemm(self, a: Any, b: Any, out: Any) -> bool:
        """out[...] = a @ b with float32 accumulation: a (..., M, K), b (..., K, N), out (..., M, N);
        leading dimensions broadcast. Returns False when the operands do not fit one strided-batched
        call (the caller falls back to ``cupy.matmul``)."""
        call = plan_gemm(a, b, out)
        if call is None:
            return False
        if call == "empty":
            return True
        if call == "zero":
            out.fill(0)
            return True
        ta, tb, m, n, k, lda, sa, ldb, sb, ldc, sc, batch = call
        lib = self._bind()
        # column-major: C^T (N x M) = op(B^T) (N x K) @ op(A^T) (K x M), so B is cuBLAS's first operand
        if out.dtype == np.float32 and self.tf32:
            lib.gemm_strided_batched_ex(self.handle, tb, ta, n, m, k, self._alpha, b.data.ptr, _CUDA_R_32F, ldb, sb,
                                        a.data.ptr, _CUDA_R_32F, lda, sa, self._beta, out.data.ptr, _CUDA_R_32F,
                                        ldc, sc, batch, _COMPUTE_32F_FAST_TF32, _GEMM_DEFAULT)
        elif out.dtype == np.float32:
            lib.sgemm_strided_batched(self.handle, tb, ta, n, m, k, self._alpha, b.data.ptr, ldb, sb,
                                      a.data.ptr, lda, sa, self._beta, out.data.ptr, ldc, sc, batch)
        else:
            lib.gemm_strided_batched_ex(self.handle, tb, ta, n, m, k, self._alpha, b.data.ptr, _CUDA_R_16F, ldb, sb,
                                        a.data.ptr, _CUDA_R_16F, lda, sa, self._beta, out.data.ptr, _CUDA_R_16F,
                                        ldc, sc, batch, _COMPUTE_32F, _GEMM_DEFAULT)
        return True


def plan_gemm(a: Any, b: Any, out: Any) -> Any:
    """How ``out = a @ b`` maps onto one column-major strided-batched GEMM (works on any array with
    shape/strides/dtype, so it is tested with NumPy): ``(op_a, op_b, m, n, k, lda, stride_a, ldb,
    stride_b, ldc, stride_c, batch)`` in elements, ``"empty"`` (nothing to compute), ``"zero"`` (K = 0:
    out is zeros) or None (not expressible; use matmul)."""
    dt = out.dtype
    if a.dtype != dt or b.dtype != dt or dt not in (np.float32, np.float16):
        return None
    if a.ndim < 2 or b.ndim < 2 or out.ndim < 2:
        return None
    m, n = out.shape[-2:]
    k = a.shape[-1]
    lead = tuple(out.shape[:-2])
    if a.shape[-2] != m or b.shape[-2] != k or b.shape[-1] != n:
        return None
    batch = math.prod(lead)
    if batch == 0 or m == 0 or n == 0:
        return "empty"
    if k == 0:
        return "zero"
    pa, pb, po = _operand(a, lead), _operand(b, lead), _operand(out, lead)
    if pa is None or pb is None or po is None or po[0] != _OP_N:
        return None
    # a row-major operand read column-major is already its transpose, so it enters as OP_N
    return (pa[0], pb[0], m, n, k, pa[1], pa[2], pb[1], pb[2], po[1], po[2], batch)


def _operand(x: Any, lead: tuple) -> tuple | None:
    """(op, leading dimension, batch stride) in elements for the last two dims of ``x`` seen column-major,
    with ``x``'s leading dims broadcast against ``lead``; None when one strided batch cannot express it."""
    isz = x.itemsize
    if any(s % isz for s in x.strides):
        return None
    st = [s // isz for s in x.strides]
    r, c = x.shape[-2:]
    sr, sc = st[-2:]
    if (sc == 1 or c == 1) and (sr >= c or r == 1) and sr >= 0:
        op, ld = _OP_N, (sr if r > 1 else max(c, 1))
    elif (sr == 1 or r == 1) and (sc >= r or c == 1) and sc >= 0:
        op, ld = _OP_T, (sc if c > 1 else max(r, 1))
    else:
        return None
    xl, xs = tuple(x.shape[:-2]), st[:-2]
    if len(xl) > len(lead):
        return None
    pad = len(lead) - len(xl)
    dims = []                               # (size, stride) of every batch dim that varies
    for d, size in enumerate(lead):
        j = d - pad
        xsize, xstride = (xl[j], xs[j]) if j >= 0 else (1, 0)
        if xsize not in (1, size):
            return None
        if size > 1:
            dims.append((size, 0 if xsize == 1 else xstride))
    if not dims:
        return op, ld, 0
    if all(s == 0 for _, s in dims):
        return op, ld, 0
    for (s0, st0), (s1, st1) in zip(dims, dims[1:]):
        if st1 == 0 or st0 != st1 * s1:
            return None
    stride = dims[-1][1]
    return (op, ld, stride) if stride > 0 else None
