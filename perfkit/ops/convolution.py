"""Convolution over (C, H, W) with stride, padding, dilation and groups, as im2col + GEMM."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, as_array, pair, register_op, TensorSpec


def conv_out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@register_op
class Convolution(Op):
    type = "convolution"
    short = "conv"
    weight_names = ("kernel", "bias")

    def check(self, params, weights):
        k = params.get("num_output_maps")
        if not isinstance(k, int) or k <= 0:
            raise NetworkDefinitionError(f"num_output_maps must be a positive int, not {k!r}")
        params["kernel_size"] = pair(params.get("kernel_size"), "kernel_size", 1)
        params["stride"] = pair(params.get("stride", 1), "stride", 1)
        params["padding"] = pair(params.get("padding", 0), "padding", 0)
        params["dilation"] = pair(params.get("dilation", 1), "dilation", 1)
        g = params.get("groups", 1)
        if not isinstance(g, int) or g <= 0 or k % g:
            raise NetworkDefinitionError(f"groups={g!r} must be a positive int dividing num_output_maps={k}")
        params["groups"] = g
        w = as_array(weights["kernel"], "kernel")
        kh, kw = params["kernel_size"]
        if w.ndim != 4 or w.shape[0] != k or w.shape[2:] != (kh, kw):
            raise ShapeError(f"kernel must have shape ({k}, C/groups, {kh}, {kw}), got {w.shape}")
        weights["kernel"] = w
        if weights.get("bias") is not None:
            b = as_array(weights["bias"], "bias")
            if b.shape != (k,):
                raise ShapeError(f"bias must have shape ({k},), got {b.shape}")
            weights["bias"] = b
        else:
            weights.pop("bias", None)
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        if len(x.shape) != 3:
            raise ShapeError(f"convolution needs a per-sample (C, H, W) input, got {x.shape}")
        c, h, w = x.shape
        g = params["groups"]
        if c % g or weights["kernel"].shape[1] != c // g:
            raise ShapeError(f"input has {c} channels; with groups={g} the kernel needs "
                             f"{c // g if c % g == 0 else 'C divisible by groups'} input channels per group, "
                             f"kernel shape is {weights['kernel'].shape}")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (params[k] for k in ("kernel_size", "stride", "padding", "dilation"))
        oh, ow = conv_out_size(h, kh, sh, ph, dh), conv_out_size(w, kw, sw, pw, dw)
        if oh <= 0 or ow <= 0:
            raise ShapeError(f"a {kh}x{kw} kernel (dilation {dh}x{dw}, padding {ph}x{pw}) does not fit "
                             f"an input of {h}x{w}")
        return [TensorSpec((params["num_output_maps"], oh, ow), x.dtype)]

    def _plan(self, params, x_shape, out_shape):
        c, h, w = x_shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (params[k] for k in ("kernel_size", "stride", "padding", "dilation"))
        direct = (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0)
        return direct, (h + 2 * ph, w + 2 * pw)

    def workspace(self, params, inputs, outputs, batch):
        x, o = inputs[0], outputs[0]
        direct, (hp, wp) = self._plan(params, x.shape, o.shape)
        if direct:
            return 0
        kh, kw = params["kernel_size"]
        padded = batch * x.shape[0] * hp * wp * x.itemsize if params["padding"] != (0, 0) else 0
        cols = batch * x.shape[0] * kh * kw * o.shape[1] * o.shape[2] * x.itemsize
        return padded + cols + 512

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        b, c, h, w = x.shape
        k, oh, ow = out.shape[1:]
        g = params["groups"]
        cg, kg = c // g, k // g
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (params[n] for n in ("kernel_size", "stride", "padding", "dilation"))
        wmat = weights["kernel"].reshape(g, kg, cg * kh * kw)
        direct, (hp, wp) = self._plan(params, (c, h, w), (k, oh, ow))
        if direct:
            cols = x.reshape(b, g, cg, h * w)
        else:
            if ph or pw:
                padded = env.scratch((b, c, hp, wp), x.dtype)
                padded.fill(0)
                padded[:, :, ph:ph + h, pw:pw + w] = x
            else:
                padded = xp.ascontiguousarray(x)
            s = padded.strides
            win = xp.lib.stride_tricks.as_strided(
                padded, shape=(b, g, cg, kh, kw, oh, ow),
                strides=(s[0], cg * s[1], s[1], dh * s[2], dw * s[3], sh * s[2], sw * s[3]))
            cols = env.scratch((b, g, cg, kh, kw, oh, ow), x.dtype)
            cols[...] = win
            cols = cols.reshape(b, g, cg * kh * kw, oh * ow)
        env.matmul(wmat, cols, out.reshape(b, g, kg, oh * ow))
        if "bias" in weights:
            xp.add(out, weights["bias"].reshape(k, 1, 1), out=out)

    def cost(self, params, inputs, outputs, weights):
        kh, kw = params["kernel_size"]
        cg = inputs[0].shape[0] // params["groups"]
        o = outputs[0]
        wbytes = weights["kernel"].size * o.itemsize
        return Cost(flops=2.0 * o.size * cg * kh * kw + (o.size if "bias" in weights else 0),
                    bytes=float(inputs[0].nbytes + o.nbytes + wbytes))

