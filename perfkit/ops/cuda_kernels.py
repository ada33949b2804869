"""CUDA kernels that make fused layers one pass on the GPU (compiled by CuPy on first use).

- ``im2col``: gathers every convolution window, padding and dilation included, straight from the
  input into the column matrix: one launch instead of a fill, a copy and a strided gather.
- ``epilogue``: bias, power, residual sum and ReLU of a fused layer in one element-wise pass over its
  output, instead of one launch (and one read and write of the output) per operation.
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
