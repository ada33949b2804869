"""Matrix-vector products for fully connected layers at small batches (CUDA only): the ``gemv`` tactic.

``y (B, K) = relu?(x (B, N) @ W^T + b)`` with ``W`` stored (K, N), one row per output, as a network stores a
fully connected kernel. At batch 1 to a few such a layer only streams its weights once, so its time is the
weight bytes over the memory bandwidth. cuBLASLt's float16 algorithms for N = 1 ran no faster than its float32
GEMV on an H200 (so the precision choice kept 4096-wide layers in float32 and read twice the bytes); this
kernel reads float16 weights at the memory's pace.

One warp per output row: each lane reads 16-byte pieces of the row (8 float16 or 4 float32 values) and of up
to 8 input rows, accumulates in float32, the warp sums its lanes, and lane 0 adds the bias, applies the ReLU
and writes the 8 outputs. A larger batch runs as more 8-row slices over the same weights (the builder times
the tactic and keeps it only where it wins). The 16-byte loads need the row length and the addresses aligned
to 16 bytes; otherwise the kernel reads one value per lane at a time, still coalesced.
"""
from __future__ import annotations

from typing import Any

import numpy as np

ROWS = 8                # input rows per slice (float32 accumulators per lane)
UNROLL = 4              # 16-byte weight loads in flight per lane
WARPS = 8               # warps (output rows) per block

_SOURCE = r"""
#include <cuda_fp16.h>
__device__ __forceinline__ void pk_load(const float* p, float* f) {
    float4 u = __ldg(reinterpret_cast<const float4*>(p));
    f[0] = u.x; f[1] = u.y; f[2] = u.z; f[3] = u.w;
}
__device__ __forceinline__ void pk_load(const __half* p, float* f) {
    uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) { float2 t = __half22float2(h[i]); f[2 * i] = t.x; f[2 * i + 1] = t.y; }
}

template <typename T>
__device__ void pk_gemv(const T* __restrict__ W, const T* __restrict__ x, const T* __restrict__ bias,
                        T* __restrict__ y, int K, int N, int B, int vec, int relu) {
    constexpr int E = 16 / sizeof(T);
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= K) return;
    const int b0 = blockIdx.y * ROWS;
    const int nb = min(ROWS, B - b0);
    const T* w = W + (long long)row * N;
    const T* xs = x + (long long)b0 * N;
    float acc[ROWS];
#pragma unroll
    for (int b = 0; b < ROWS; ++b) acc[b] = 0.f;
    int done = 0;
    if (vec) {
        const int pieces = N / E;
        // UNROLL 16-byte pieces of the weight row per lane are loaded before any is used: that many loads in
        // flight per lane keep the memory busy (the row is read once; there is nothing to reuse)
        for (int c = lane; c < pieces; c += 32 * UNROLL) {
            float wv[UNROLL][E];
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                if (c + 32 * u < pieces) pk_load(w + (c + 32 * u) * E, wv[u]);
            }
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                if (c + 32 * u < pieces) {
#pragma unroll
                    for (int b = 0; b < ROWS; ++b) {
                        if (b < nb) {
                            float xv[E];
                            pk_load(xs + (long long)b * N + (c + 32 * u) * E, xv);
#pragma unroll
                            for (int e = 0; e < E; ++e) acc[b] = fmaf(wv[u][e], xv[e], acc[b]);
                        }
                    }
                }
            }
        }
        done = pieces * E;
    }
    for (int j = done + lane; j < N; j += 32) {
        float wv = (float)w[j];
#pragma unroll
        for (int b = 0; b < ROWS; ++b)
            if (b < nb) acc[b] = fmaf(wv, (float)xs[(long long)b * N + j], acc[b]);
    }
#pragma unroll
    for (int b = 0; b < ROWS; ++b) {
        float v = acc[b];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        acc[b] = v;
    }
    if (lane == 0) {
        const float bv = bias ? (float)bias[row] : 0.f;
#pragma unroll
        for (int b = 0; b < ROWS; ++b) {
            if (b < nb) {
                float v = acc[b] + bv;
                if (relu) v = v > 0.f ? v : 0.f;
                y[(long long)(b0 + b) * K + row] = (T)v;
            }
        }
    }
}

extern "C" {
__global__ void pk_gemv_f(const float* W, const float* x, const float* b, float* y, int K, int N, int B, int vec,
                          int relu) { pk_gemv<float>(W, x, b, y, K, N, B, vec, relu); }
__global__ void pk_gemv_h(const __half* W, const __half* x, const __half* b, __half* y, int K, int N, int B,
                          int vec, int relu) { pk_gemv<__half>(W, x, b, y, K, N, B, vec, relu); }
}
"""
_TYPES = {np.dtype(np.float32): "f", np.dtype(np.float16): "h"}
_modules: dict = {}


def fits(dtype: Any) -> bool:
    """Whether the kernel handles this storage dtype (float32, float16)."""
    return np.dtype(dtype) in _TYPES


def gemv(x: Any, w: Any, bias: Any, out: Any, relu: bool, unroll: int = UNROLL) -> None:
    """out (B, K) = relu?(x (B, N) @ w (K, N)^T + bias (K,)), all of one dtype, C-contiguous, on the current
    stream. ``unroll``: weight loads in flight per lane (a compile-time constant; benchmarks try others)."""
    module = _modules.get(unroll)
    if module is None:
        import cupy
        source = f"#define ROWS {ROWS}\n#define UNROLL {int(unroll)}\n" + _SOURCE
        module = _modules[unroll] = cupy.RawModule(code=source, options=("--std=c++14",))
    fn = module.get_function(f"pk_gemv_{_TYPES[w.dtype]}")
    k, n = w.shape
    b = x.shape[0]
    vec = (n * w.dtype.itemsize) % 16 == 0 and x.data.ptr % 16 == 0 and w.data.ptr % 16 == 0
    grid = (-(-k // WARPS), -(-b // ROWS))
    fn(grid, (32 * WARPS,), (w, x, bias if bias is not None else np.uint64(0), out, np.int32(k), np.int32(n),
                             np.int32(b), np.int32(vec), np.int32(bool(relu))))
