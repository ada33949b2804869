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

#: (layer, bytes asked for, bytes left) of every under-declared scratch request in this process
OVERFLOWS: list = []
_overflow_lock = threading.Lock()


def aligned(nbytes: int) -> int:
    """Bytes one scratch array of ``nbytes`` takes in a workspace (arrays start 256-byte aligned)."""
    return (int(nbytes) + ALIGN - 1) // ALIGN * ALIGN


def scratch_size(*nbytes: int) -> int:
    """Workspace bytes for scratch arrays of the given sizes carved one after another."""
    return sum(aligned(n) for n in nbytes if n)


def gemm_conversion_bytes(gemms: Iterable, device_kind: str | None) -> int:
    """Workspace :meth:`Env.matmul` takes for the float32 copies of operands the device cannot
    multiply in their storage dtype: ``gemms`` is ``(a_shape, b_shape, out_shape, dtype)`` per
    product (full shapes, batch included where the operand has one); the largest product counts,
    since each one's copies are given back when it returns. ``device_kind`` None: the most any
    device needs (the CPU's)."""
    native = NATIVE_GEMM.get(device_kind or "cpu", NATIVE_GEMM["cpu"])
    need = 0
    for a, b, out, dtype in gemms:
        if np.dtype(dtype).name in native:
            continue
        need = max(need, scratch_size(*(4 * math.prod(s) for s in (a, b, out))))
    return need


class Env:
    """Per-context execution environment handed to ``Op.compute``.

    ``scratch(shape, dtype)`` carves arrays out of the context's workspace (reset before each
    layer); ``mark()``/``release(mark)`` give back what was carved after a mark; ``float32(a)``
    returns ``a`` or a float32 copy of it in scratch; ``matmul(a, b, out)`` multiplies with float32
    accumulation whatever the storage dtype (on CUDA one cuBLAS call on the context's own handle,
    see ``cuda_gemm.py``).
    """

    strict = os.environ.get("PERFKIT_STRICT_WORKSPACE", "") not in ("", "0")

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
            OVERFLOWS.append((layer, asked, short))
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
            # scratch, see gemm_conversion_bytes), store in the storage dtype
            mark = self.mark()
            try:
                a32, b32 = self.float32(a), self.float32(b)
                o32 = out if out.dtype == np.float32 else self.scratch(out.shape, np.float32)
                xp.matmul(a32, b32, out=o32)
                if o32 is not out:
                    xp.copyto(out, o32, casting="unsafe")
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
