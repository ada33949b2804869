"""Fully connected products on cuBLASLt with the bias and ReLU fused into the GEMM's epilogue (CUDA only).

``out (B, K) = x (B, N) @ W^T + b``, then ReLU, as one ``cublasLtMatmul`` on nvmath-python's bindings: the
column-major view is ``D (K x B) = op(W) x (N x B)``, so the bias is cuBLASLt's per-row vector and the epilogue
``BIAS``/``RELU_BIAS``/``RELU`` applies it in the kernel that computes the product, instead of a second pass over
the output (measured on an H200: that pass was 6.4 us of each 4096-wide layer's 24 us at batch 256). The weight is
``(K, N)`` as the network stores it (``TRANSA = T``) or ``(N, K)`` pre-transposed (``TRANSA = N``). float16 and
float32 storage, float32 accumulation; float32 stays strict (``CUBLAS_COMPUTE_32F``) unless the engine allows
TF32 (``BuilderConfig.tf32``: ``CUBLAS_COMPUTE_32F_FAST_TF32``).

A plan (descriptors, layouts and cuBLASLt's heuristic list of up to four algorithms within the workspace, for the
operands' actual alignments) is made once per shape, dtype, epilogue and alignment on the context's own handle and
kept with it; the bias pointer is set on the plan's descriptor per call. The tactics ``lt``, ``lt1``, ``lt2`` and
``lt3`` run the first to fourth algorithm of that list: the builder times them like any tactics (cuBLASLt's first
choice is a prediction; at batch 1 on an H200 it lost to fp32's GEMV), and the engine fixes the choice, so that
its contexts all run the same kernels. An algorithm picked per context by timing made contexts of one engine
disagree in the last bits. The same kernels need the same alignments: a user binding that is a slice at an odd
offset gets the heuristic list for that alignment, so its results may differ from an aligned call's in the last
bits (still within the precision's tolerance). When the list is shorter than four, the later tactics run its last
algorithm (the builder then times the same kernel twice). The workspace is the context's cuBLAS workspace: the two libraries run in stream order and
never at once. ``cublasLtMatmul`` is an asynchronous launch that CUDA stream capture accepts.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import TacticUnavailable

_R_32F, _R_16F = 0, 2
_COMPUTE_32F = 68
_COMPUTE_32F_FAST_TF32 = 77
_OP_N, _OP_T = 0, 1
#: the tactics ``lt``, ``lt1`` .. : the i-th algorithm of cuBLASLt's heuristic list for the product's shape
TACTICS = ("lt", "lt1", "lt2", "lt3")
CANDIDATES = len(TACTICS)


def algorithm_index(tactic: str) -> int:
    return TACTICS.index(tactic)


def _alignment(ptr: int) -> int:
    """The largest power of two (up to 256) that divides an address: cuBLASLt's heuristics assume 256 bytes
    unless told, and a user's binding may be a slice at any offset."""
    return min(256, ptr & -ptr) if ptr else 256


def _lib() -> Any:
    try:
        from nvmath.bindings import cublasLt
        cublasLt.get_version()           # loads libcublasLt now: a missing library drops the tactic at once
        return cublasLt
    except Exception as exc:             # not installed, or libcublasLt failed to load
        raise TacticUnavailable(f"cuBLASLt is not available ({type(exc).__name__}: {exc}); pip install "
                                "perfkit[cuda13] (or [cuda12]) installs nvmath-python") from exc


def fits(x: Any, epilogues: Any) -> bool:
    """Whether the ``lt`` tactics apply: a float16/float32, non-constant input ``x`` (a TensorSpec), and
    epilogues (the layer's parameters, or an MLP's stages) of at most a ReLU, without a power."""
    return x.dtype in ("float16", "float32") and not x.constant and all(
        (e.get("activation") is None or e["activation"]["kind"] == "relu") and e.get("power") is None
        for e in epilogues)


def unavailable_reason() -> str | None:
    try:
        _lib()
    except TacticUnavailable as exc:
        return str(exc)
    return None


class _Plan:
    """Descriptors and algorithm of one product shape; destroyed with the handle."""

    def __init__(self, lt: Any, handle: int, m: int, n: int, k: int, trans_a: int, dtype: Any, epilogue: int,
                 workspace_bytes: int, alignments: tuple, tf32: bool = False) -> None:
        self.lt = lt
        dt = _R_16F if np.dtype(dtype) == np.float16 else _R_32F
        compute = _COMPUTE_32F_FAST_TF32 if tf32 and dt == _R_32F else _COMPUTE_32F
        self.desc = lt.matmul_desc_create(compute, _R_32F)
        self.layouts: list = []
        self.pref = 0
        try:
            self._set(lt.MatmulDescAttribute.TRANSA, trans_a, np.int32)
            self._set(lt.MatmulDescAttribute.TRANSB, _OP_N, np.int32)
            self._set(lt.MatmulDescAttribute.EPILOGUE, epilogue, np.uint32)
            # A as stored (before op): (k x m) for TRANSA=T, (m x k) for N; B (k x n); C = D (m x n); column-major
            a_rows, a_cols = (k, m) if trans_a == _OP_T else (m, k)
            self.a = lt.matrix_layout_create(dt, a_rows, a_cols, a_rows)
            self.layouts.append(self.a)
            self.b = lt.matrix_layout_create(dt, k, n, k)
            self.layouts.append(self.b)
            self.d = lt.matrix_layout_create(dt, m, n, m)
            self.layouts.append(self.d)
            self.pref = lt.matmul_preference_create()
            ws = np.array([workspace_bytes], np.uint64)
            lt.matmul_preference_set_attribute(self.pref, lt.MatmulPreferenceAttribute.MAX_WORKSPACE_BYTES,
                                               ws.ctypes.data, ws.nbytes)
            P = lt.MatmulPreferenceAttribute
            for attr, value in zip((P.MIN_ALIGNMENT_A_BYTES, P.MIN_ALIGNMENT_B_BYTES, P.MIN_ALIGNMENT_C_BYTES,
                                    P.MIN_ALIGNMENT_D_BYTES), alignments):
                v = np.array([value], np.uint32)
                lt.matmul_preference_set_attribute(self.pref, attr, v.ctypes.data, v.nbytes)
            self.result = lt.MatmulHeuristicResult(CANDIDATES)
            count = np.zeros(1, np.int32)
            lt.matmul_algo_get_heuristic(handle, self.desc, self.a, self.b, self.d, self.d, self.pref, CANDIDATES,
                                         self.result.ptr, count.ctypes.data)
            self.count = int(count[0])
            if self.count < 1:
                raise TacticUnavailable(f"cuBLASLt has no algorithm for a {m}x{k} by {k}x{n} product in "
                                        f"{np.dtype(dtype).name} with epilogue {epilogue} and operand alignments "
                                        f"{alignments} bytes")
            self._size = np.dtype(lt.matmul_heuristic_result_dtype).itemsize
            self._ws = np.asarray(self.result.workspace_size).reshape(-1)
        except TacticUnavailable:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise TacticUnavailable(f"cuBLASLt cannot plan this product ({type(exc).__name__}: {exc})") from exc
        self._bias = np.zeros(1, np.uint64)        # the BIAS_POINTER attribute's value, set per call

    def algorithm(self, i: int) -> tuple:
        """(algorithm pointer, workspace bytes) of the ``i``-th heuristic choice, or of the last one when the list
        is shorter (each result's first member is its algorithm)."""
        i = min(i, self.count - 1)
        return self.result.ptr + i * self._size, int(self._ws[i])

    def _set(self, attr: int, value: int, dtype: Any) -> None:
        v = np.array([value], dtype)
        self.lt.matmul_desc_set_attribute(self.desc, attr, v.ctypes.data, v.nbytes)

    def set_bias(self, ptr: int) -> None:
        if int(self._bias[0]) != ptr:
            self._bias[0] = ptr
            self.lt.matmul_desc_set_attribute(self.desc, self.lt.MatmulDescAttribute.BIAS_POINTER,
                                              self._bias.ctypes.data, self._bias.nbytes)

    def close(self) -> None:
        lt = self.lt
        for lay in self.layouts:
            lt.matrix_layout_destroy(lay)
        self.layouts = []
        if self.pref:
            lt.matmul_preference_destroy(self.pref)
            self.pref = 0
        if self.desc:
            lt.matmul_desc_destroy(self.desc)
            self.desc = 0


class Lt:
    """One context's cuBLASLt handle and its plans."""

    def __init__(self, workspace: Any, tf32: bool = False) -> None:
        self.lib = _lib()
        self.tf32 = bool(tf32)
        self.workspace = workspace                  # 1-D uint8 CuPy array (the context's cuBLAS workspace) or None
        self.handle = self.lib.create()
        self.plans: dict = {}
        self._one = np.ones(1, np.float32)
        self._zero = np.zeros(1, np.float32)

    def linear(self, x: Any, w: Any, bias: Any, out: Any, relu: bool, transposed: bool, index: int = 0) -> None:
        """out (B, K) = relu?(x (B, N) @ W^T + bias); ``w`` is (K, N), or (N, K) when ``transposed``; ``index``:
        which of cuBLASLt's heuristic algorithms (the tactic chose it at build time, so every context of an engine
        runs the same one and gives the same bits)."""
        import cupy
        lt = self.lib
        b, n = x.shape
        k = out.shape[1]
        trans_a = _OP_N if transposed else _OP_T
        ep = lt.Epilogue
        epilogue = int((ep.RELU_BIAS if relu else ep.BIAS) if bias is not None else (ep.RELU if relu else ep.DEFAULT))
        ws_bytes = 0 if self.workspace is None else int(self.workspace.nbytes)
        alignments = (_alignment(w.data.ptr), _alignment(x.data.ptr), _alignment(out.data.ptr),
                      _alignment(out.data.ptr))
        key = (k, b, n, trans_a, np.dtype(out.dtype).str, epilogue, ws_bytes, alignments)
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = _Plan(lt, self.handle, k, b, n, trans_a, out.dtype, epilogue, ws_bytes,
                                           alignments, self.tf32)
        if bias is not None:
            plan.set_bias(bias.data.ptr)
        algo, algo_ws = plan.algorithm(index)
        lt.matmul(self.handle, plan.desc, self._one.ctypes.data, w.data.ptr, plan.a, x.data.ptr, plan.b,
                  self._zero.ctypes.data, out.data.ptr, plan.d, out.data.ptr, plan.d, algo,
                  0 if self.workspace is None else self.workspace.data.ptr, algo_ws,
                  cupy.cuda.get_current_stream().ptr)

    def close(self) -> None:
        for plan in self.plans.values():
            plan.close()
        self.plans = {}
        if self.handle:
            try:
                self.lib.destroy(self.handle)
            except Exception:
                pass
            self.handle = 0

