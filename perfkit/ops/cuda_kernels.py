"""CUDA kernels that make fused layers one pass on the GPU (compiled by CuPy on first use).

- ``im2col``: gathers every convolution window, padding and dilation included, straight from the
  input into the column matrix: one launch instead of a fill, a copy and a strided gather.
- ``softmax``: (log-)softmax over the last axis, one block per row, one launch.
- ``epilogue``: bias, power, residual sum and ReLU of a fused layer in one element-wise pass over its
  output, instead of one launch (and one read and write of the output) per operation.
- ``pool``: max or average pooling in one pass, in either layout, instead of a padded copy and one
  element-wise pass per window position.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_cache: dict = {}


def _kernel(name: str, build) -> Any:
    k = _cache.get(name)
    if k is None:
        k = _cache[name] = build()
    return k


def im2col(x: Any, cols: Any, kernel_size, stride, padding, dilation, out_hw) -> None:
    """x (B, C, H, W) contiguous -> cols (B, C, kh, kw, OH, OW) contiguous."""
    import cupy

    def build():
        return cupy.ElementwiseKernel(
            "raw T x, int64 c, int64 h, int64 w, int64 kh, int64 kw, int64 sh, int64 sw, int64 ph, int64 pw, "
            "int64 dh, int64 dw, int64 oh, int64 ow", "T col",
            """
            long long r = i;
            long long ox = r % ow; r /= ow;
            long long oy = r % oh; r /= oh;
            long long t = r % kw; r /= kw;
            long long a = r % kh; r /= kh;
            long long ci = r % c; long long n = r / c;
            long long iy = oy * sh - ph + a * dh;
            long long ix = ox * sw - pw + t * dw;
            col = (iy >= 0 && iy < h && ix >= 0 && ix < w) ? x[((n * c + ci) * h + iy) * w + ix] : (T)0;
            """, "perfkit_im2col")
    b, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    oh, ow = out_hw
    _kernel("im2col", build)(x, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, cols)


def epilogue(out: Any, bias: Any, power: float | None, residual: Any, relu: bool) -> None:
    """In place: out = relu(((out + bias[channel]) ** power) + residual), each part optional.
    ``out`` is (B, K, spatial...) contiguous; ``bias`` (K,); ``residual`` has out's shape or its
    per-sample shape (a constant broadcast over the batch)."""
    import cupy
    has_b, has_p, has_r = bias is not None, power is not None, residual is not None
    key = f"epi{int(has_b)}{int(has_p)}{int(has_r)}{int(relu)}"

    def build():
        body = ["float v = (float)out;"]
        if has_b:
            body.append("v += (float)bias[(i / spatial) % k];")
        if has_p:
            body.append("v = powf(v, power);")
        if has_r:
            body.append("v += (float)res[i % res_size];")
        if relu:
            body.append("v = v > 0.f ? v : 0.f;")
        body.append("out = (T)v;")
        return cupy.ElementwiseKernel("raw T bias, raw T res, float32 power, int64 spatial, int64 k, int64 res_size",
                                      "T out", "\n".join(body), f"perfkit_{key}")
    k = out.shape[1]
    spatial = int(np.prod(out.shape[2:])) if out.ndim > 2 else 1
    dummy = out.reshape(-1)[:1]
    res = residual if has_r else dummy
    _kernel(key, build)(bias if has_b else dummy, res, np.float32(power or 1.0), spatial, k,
                        int(res.size) if has_r else 1, out)


def pool_counts(out: Any, size, window, stride, padding) -> None:
    """out (OH, OW) float32: how many input values each pooling window covers (padding excluded),
    computed on the device (no host array, no copy: capturable in a CUDA graph)."""
    import cupy

    def build():
        return cupy.ElementwiseKernel(
            "int64 h, int64 w, int64 kh, int64 kw, int64 sh, int64 sw, int64 ph, int64 pw, int64 ow", "T count",
            """
            long long oy = i / ow, ox = i % ow;
            long long y0 = oy * sh - ph, x0 = ox * sw - pw;
            long long y1 = y0 + kh < h ? y0 + kh : h, x1 = x0 + kw < w ? x0 + kw : w;
            long long ch = y1 - (y0 > 0 ? y0 : 0), cw = x1 - (x0 > 0 ? x0 : 0);
            count = (T)(ch * cw);
            """, "perfkit_pool_counts")
    (h, w), (kh, kw), (sh, sw), (ph, pw) = size, window, stride, padding
    _kernel("pool_counts", build)(h, w, kh, kw, sh, sw, ph, pw, out.shape[1], out)


_POOL = r"""
#include <cuda_fp16.h>
extern "C" __global__ void perfkit_pool(const DTYPE* __restrict__ x, DTYPE* __restrict__ y, long long total,
        long long C, long long H, long long W, long long OH, long long OW, long long kh, long long kw, long long sh,
        long long sw, long long ph, long long pw, long long xn, long long xc, long long xh, long long xw, long long yn,
        long long yc, long long yh, long long yw, int last, int excl) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long r = i, n, c, oy, ox;
        if (last) { c = r % C; r /= C; ox = r % OW; r /= OW; oy = r % OH; n = r / OH; }
        else { ox = r % OW; r /= OW; oy = r % OH; r /= OH; c = r % C; n = r / C; }
        const long long y0 = oy * sh - ph, x0 = ox * sw - pw, base = n * xn + c * xc;
        float acc = IS_MAX ? __int_as_float(0xff800000) : 0.f;     // -inf
        int cnt = 0;
        for (long long a = y0 < 0 ? -y0 : 0; a < kh && y0 + a < H; ++a) {
            for (long long t = x0 < 0 ? -x0 : 0; t < kw && x0 + t < W; ++t) {
                float v = static_cast<float>(x[base + (y0 + a) * xh + (x0 + t) * xw]);
                if (IS_MAX) acc = (acc != acc) ? acc : ((v > acc || v != v) ? v : acc);   // NaN wins, as in NumPy
                else acc += v;
                ++cnt;
            }
        }
        if (!IS_MAX) acc /= excl ? (float)cnt : (float)(kh * kw);
        y[n * yn + c * yc + oy * yh + ox * yw] = DTYPE(acc);
    }
}
"""


def pool(x: Any, out: Any, pool_kind: str, window, stride, padding, exclude_padding: bool) -> None:
    """Max or average pooling of x (B, C, H, W) into out (B, C, OH, OW) in one launch, either array in any
    strides: one thread per output value, the window's in-bounds values only (padding is never read or
    written), averages and comparisons in float32. The threads walk the output in its memory order, channels
    fastest when it is channels-last, so that neighbouring threads read and write neighbouring addresses.
    NaN propagates through max, as NumPy's maximum does. float16 and float32 (others: TacticUnavailable)."""
    ctype = {"float16": "__half", "float32": "float"}.get(x.dtype.name)
    if ctype is None or out.dtype != x.dtype:
        from .base import TacticUnavailable
        raise TacticUnavailable(f"the pooling kernel runs float16 and float32 tensors, not {x.dtype.name} into "
                                f"{out.dtype.name}")
    import cupy
    is_max = pool_kind == "max"
    key = f"pool_{pool_kind}_{ctype}"
    kernel = _kernel(key, lambda: cupy.RawKernel(
        f"#define DTYPE {ctype}\n#define IS_MAX {int(is_max)}\n" + _POOL, "perfkit_pool"))
    b, c, h, w = x.shape
    oh, ow = out.shape[2:]
    (kh, kw), (sh, sw), (ph, pw) = window, stride, padding
    xs = [s // x.itemsize for s in x.strides]
    ys = [s // out.itemsize for s in out.strides]
    last = int(c > 1 and ys[1] == 1)             # channels-last output: threads walk the channels first
    total = out.size
    threads = 256
    blocks = max(1, min((total + threads - 1) // threads, 65535 * 8))
    i64 = np.int64
    kernel((blocks,), (threads,), (x, out, i64(total), i64(c), i64(h), i64(w), i64(oh), i64(ow), i64(kh), i64(kw),
                                   i64(sh), i64(sw), i64(ph), i64(pw), *map(i64, xs), *map(i64, ys), np.int32(last),
                                   np.int32(bool(exclude_padding))))


_SOFTMAX = r"""
#include <cuda_fp16.h>
__device__ __forceinline__ float pk_max(float a, float b) { return (a > b || a != a) ? a : b; }

template <bool SUM> __device__ float pk_block(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = SUM ? v + u : pk_max(v, u);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    if (warps > 1) {
        if (lane == 0) red[warp] = v;
        __syncthreads();
        v = lane < warps ? red[lane] : (SUM ? 0.f : __int_as_float(0xff800000));
        for (int o = 16; o > 0; o >>= 1) {
            float u = __shfl_xor_sync(0xffffffffu, v, o);
            v = SUM ? v + u : pk_max(v, u);
        }
        __syncthreads();
    }
    return v;
}

template <typename TI, typename TO>
__device__ void pk_softmax(const TI* x, TO* y, long long n, int log_softmax) {
    __shared__ float red[32];
    const TI* xr = x + (long long)blockIdx.x * n;
    TO* yr = y + (long long)blockIdx.x * n;
    float m = __int_as_float(0xff800000);
    for (long long i = threadIdx.x; i < n; i += blockDim.x) m = pk_max(m, (float)xr[i]);
    m = pk_block<false>(m, red);
    float s = 0.f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += expf((float)xr[i] - m);
    s = pk_block<true>(s, red);
    float ls = logf(s);
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        float v = (float)xr[i] - m;
        yr[i] = (TO)(log_softmax ? v - ls : expf(v) / s);
    }
}

extern "C" {
__global__ void pk_softmax_ff(const float* x, float* y, long long n, int l) { pk_softmax<float, float>(x, y, n, l); }
__global__ void pk_softmax_hh(const __half* x, __half* y, long long n, int l) { pk_softmax<__half, __half>(x, y, n, l); }
__global__ void pk_softmax_hf(const __half* x, float* y, long long n, int l) { pk_softmax<__half, float>(x, y, n, l); }
__global__ void pk_softmax_fh(const float* x, __half* y, long long n, int l) { pk_softmax<float, __half>(x, y, n, l); }
}
"""
_SOFTMAX_TYPES = {np.dtype(np.float32): "f", np.dtype(np.float16): "h"}


def softmax_fits(x: Any, out: Any) -> bool:
    """Whether :func:`softmax` applies: contiguous float32/float16 arrays, softmax over the last axis."""
    return (x.dtype in _SOFTMAX_TYPES and out.dtype in _SOFTMAX_TYPES and x.flags.c_contiguous
            and out.flags.c_contiguous and x.size > 0)


def softmax(x: Any, out: Any, log: bool) -> None:
    """out = (log-)softmax of x over its last axis, one block per row: the max, the sum of exponentials and the
    result in one launch (float32 arithmetic), instead of a copy, two reductions and three element-wise passes."""
    import cupy
    module = _kernel("softmax", lambda: cupy.RawModule(code=_SOFTMAX, options=("--std=c++14",)))
    fn = module.get_function(f"pk_softmax_{_SOFTMAX_TYPES[x.dtype]}{_SOFTMAX_TYPES[out.dtype]}")
    n = x.shape[-1]
    rows = x.size // n
    threads = 32 if n <= 256 else 256 if n <= 8192 else 1024
    fn((rows,), (threads,), (x, out, np.int64(n), np.int32(bool(log))))
