"""The environment an op computes in: array module, workspace, float32-accumulating matmul.

Every temporary array an op needs comes from the context's workspace through :meth:`Env.scratch`,
and the op declares how much it needs (``Op.scratch_bytes`` and ``Op.gemms``, summed by
``Op.workspace``), so the bytes a context uses are known when the engine is built. An op that asks
for more than it declared is a bug: the shortfall is recorded in :data:`OVERFLOWS` with a warning,
and raises :class:`~perfkit.errors.ExecutionError` when :attr:`Env.strict` is set (the test suite
sets it; ``PERFKIT_STRICT_WORKSPACE=1`` sets it for a process).
"""
from __future__ import annotations

import math
import os
import threading
import warnings
from typing import Any, Iterable

import numpy as np

from ..errors import ExecutionError

ALIGN = 256

#: storage dtypes each device multiplies without converting to float32 first
NATIVE_GEMM = {"cpu": frozenset({"float32"}), "cuda": frozenset({"float32", "float16"})}

#: layer -> (requests, most bytes asked for, most bytes missing) of under-declared scratch in this process
OVERFLOWS: dict = {}
_overflow_lock = threading.Lock()


def aligned(nbytes: int) -> int:
    """Bytes one scratch array of ``nbytes`` takes in a workspace (arrays start 256-byte aligned)."""
    return (int(nbytes) + ALIGN - 1) // ALIGN * ALIGN


def scratch_size(*nbytes: int) -> int:
    """Workspace bytes for scratch arrays of the given sizes carved one after another."""
    return sum(aligned(n) for n in nbytes if n)


#: float32 bytes of one block of the operand :meth:`Env.matmul` converts piecewise (and of the
#: matching block of the product): a weight matrix is never copied whole
BLOCK_BYTES = 1 << 18


def conversion_plan(a_shape: tuple, b_shape: tuple, out_shape: tuple) -> tuple:
    """How :meth:`Env.matmul` multiplies operands it must copy to float32: ``(kind, block, bytes)``.

    ``"b"``: a 2-D ``b`` at least as large as ``a`` is converted ``block`` columns at a time (the
    product too); ``"a"``: a 2-D ``a`` larger than ``b``, ``block`` rows at a time; ``"full"``: both
    operands and the product whole. ``bytes``: the workspace taken, alignment included."""
    na, nb, no = (math.prod(s) for s in (a_shape, b_shape, out_shape))
    if len(b_shape) == 2 and nb >= na and b_shape[1] > 1:
        k, n = b_shape
        rows = no // n
        cols = min(max(1, BLOCK_BYTES // (4 * (k + rows))), n)
        if cols < n:
            return "b", cols, scratch_size(4 * na, 4 * k * cols, 4 * rows * cols)
    elif len(a_shape) == 2 and na > nb and a_shape[0] > 1:
        m, k = a_shape
        per_row = no // m
        rows = min(max(1, BLOCK_BYTES // (4 * (k + per_row))), m)
        if rows < m:
            return "a", rows, scratch_size(4 * nb, 4 * k * rows, 4 * per_row * rows)
    return "full", 0, scratch_size(4 * na, 4 * nb, 4 * no)


def gemm_conversion_bytes(gemms: Iterable, device_kind: str | None) -> int:
    """Workspace :meth:`Env.matmul` takes for the float32 copies of operands the device cannot
    multiply in their storage dtype: ``gemms`` is ``(a_shape, b_shape, out_shape, dtype)`` per
    product, each shape exactly as the op passes it to ``matmul``; the largest product counts,
    since each one's copies are given back when it returns. ``device_kind`` None: the most any
    device needs (the CPU's)."""
    native = NATIVE_GEMM.get(device_kind or "cpu", NATIVE_GEMM["cpu"])
    need = 0
    for a, b, out, dtype in gemms:
        if np.dtype(dtype).name in native:
            continue
        need = max(need, conversion_plan(tuple(a), tuple(b), tuple(out))[2])
    return need


class Env:
    """Per-context execution environment handed to ``Op.compute``.

    ``scratch(shape, dtype)`` carves arrays out of the context's workspace (reset before each
    layer); ``mark()``/``release(mark)`` give back what was carved after a mark; ``float32(a)``
    returns ``a`` or a float32 copy of it in scratch; ``matmul(a, b, out)`` multiplies with float32
    accumulation whatever the storage dtype (on CUDA one cuBLAS call on the context's own handle,
    see ``cuda_gemm.py``). ``tf32``: float32 products may run on TF32 Tensor Cores (CUDA; the engine's
    ``BuilderConfig.tf32``).
    """

    strict = os.environ.get("PERFKIT_STRICT_WORKSPACE", "") not in ("", "0")

    def __init__(self, xp: Any, device_kind: str, workspace: Any = None, blas_workspace: Any = None,
                 tf32: bool = False):
        self.xp = xp
        self.device_kind = device_kind
        self.tf32 = bool(tf32)
        self._ws = workspace          # 1-D uint8 array or None
        self._ws_offset = 0
        self._blas_ws = blas_workspace
        self._blas = None
        self._lt = None

    @property
    def blas(self) -> Any:
        """This context's cuBLAS handle (CUDA only), created on first use."""
        if self._blas is None:
            from .cuda_gemm import Blas
            self._blas = Blas(self._blas_ws, self.tf32)
        return self._blas

    @property
    def lt(self) -> Any:
        """This context's cuBLASLt handle and plans (CUDA only), created on first use; it shares the cuBLAS
        workspace (the two run in stream order)."""
        if self._lt is None:
            from .cuda_lt import Lt
            self._lt = Lt(self._blas_ws, self.tf32)
        return self._lt

    def close(self) -> None:
        if self._blas is not None:
            self._blas.close()
            self._blas = None
        if self._lt is not None:
            self._lt.close()
            self._lt = None

    # scratch ------------------------------------------------------------------------------------
    def reset_scratch(self) -> None:
        self._ws_offset = 0

    def mark(self) -> int:
        return self._ws_offset

    def release(self, mark: int) -> None:
        """Gives back every scratch array carved since ``mark`` (they must no longer be used)."""
        self._ws_offset = mark

    def scratch(self, shape: tuple, dtype: Any) -> Any:
        dtype = np.dtype(dtype)
        shape = tuple(int(d) for d in shape)
        n = math.prod(shape) * dtype.itemsize
        start = aligned(self._ws_offset)
        have = 0 if self._ws is None else int(self._ws.nbytes)
        if start + n > have:
            self._overflow(start + n - have, n)
            return self.xp.empty(shape, dtype)
        self._ws_offset = start + n
        return self._ws[start:start + n].view(dtype).reshape(shape)

    def float32(self, a: Any) -> Any:
        """``a`` itself when it is float32, else a float32 copy of it in scratch."""
        if a.dtype == np.float32:
            return a
        y = self.scratch(a.shape, np.float32)
        self.xp.copyto(y, a, casting="unsafe")
        return y

    def _overflow(self, short: int, asked: int) -> None:
        from ..device.memory import current_layer
        layer = current_layer() or "?"
        with _overflow_lock:
            calls, most, worst = OVERFLOWS.get(layer, (0, 0, 0))
            OVERFLOWS[layer] = (calls + 1, max(most, asked), max(worst, short))
        msg = (f"layer {layer!r} asked for {asked} bytes of scratch, {short} bytes more than its op declared "
               "in workspace(); the array was allocated outside the engine's memory plan (a bug in perfkit "
               "or in the op's workspace declaration, please report it)")
        if self.strict:
            raise ExecutionError(msg)
        warnings.warn(msg, ResourceWarning, stacklevel=3)

    # products ----------------------------------------------------------------------------------
    def matmul(self, a: Any, b: Any, out: Any) -> Any:
        xp = self.xp
        if self.device_kind == "cpu":
            if a.dtype == b.dtype == out.dtype == np.float32:
                return xp.matmul(a, b, out=out)
            # NumPy has no BLAS path for float16 or bfloat16: multiply float32 copies (in declared
            # scratch, see conversion_plan), store in the storage dtype
            mark = self.mark()
            try:
                self._matmul_converted(a, b, out)
            finally:
                self.release(mark)
            return out
        if a.dtype != out.dtype:
            a = a.astype(out.dtype)
        if b.dtype != out.dtype:
            b = b.astype(out.dtype)
        if self.device_kind == "cuda" and self.blas.gemm(a, b, out):
            return out
        return xp.matmul(a, b, out=out)

    def _matmul_converted(self, a: Any, b: Any, out: Any) -> None:
        xp = self.xp
        kind, block, _ = conversion_plan(tuple(a.shape), tuple(b.shape), tuple(out.shape))
        if kind == "full":
            a32, b32 = self.float32(a), self.float32(b)
            o32 = out if out.dtype == np.float32 else self.scratch(out.shape, np.float32)
            xp.matmul(a32, b32, out=o32)
            if o32 is not out:
                xp.copyto(out, o32, casting="unsafe")
        elif kind == "b":                       # b (K, N) and the product, a block of columns at a time
            k, n = b.shape
            a32 = self.float32(a)
            bs = self.scratch((k * block,), np.float32)
            os_ = self.scratch((out.size // n * block,), np.float32)
            for j in range(0, n, block):
                w = min(block, n - j)
                bj, oj = bs[:k * w].reshape(k, w), os_[:out.size // n * w].reshape(out.shape[:-1] + (w,))
                xp.copyto(bj, b[:, j:j + w], casting="unsafe")
                xp.matmul(a32, bj, out=oj)
                xp.copyto(out[..., j:j + w], oj, casting="unsafe")
        else:                                   # a (M, K) and the product, a block of rows at a time
            m, k = a.shape
            per_row = out.size // m
            b32 = self.float32(b)
            as_ = self.scratch((k * block,), np.float32)
            os_ = self.scratch((per_row * block,), np.float32)
            for i in range(0, m, block):
                h = min(block, m - i)
                ai, oi = as_[:k * h].reshape(h, k), os_[:per_row * h].reshape(out.shape[:-2] + (h, out.shape[-1]))
                xp.copyto(ai, a[i:i + h], casting="unsafe")
                xp.matmul(ai, b32, out=oi)
                xp.copyto(out[..., i:i + h, :], oi, casting="unsafe")
