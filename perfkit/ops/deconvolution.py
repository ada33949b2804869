"""Deconvolution (transposed convolution, ONNX ``ConvTranspose``) of a (C, H, W) input.

``kernel`` has ONNX's layout (C, K/groups, kh, kw). One GEMM per group multiplies the transposed
kernel by the input, giving every tap's contribution for every input pixel (the column matrix, in
workspace); col2im then adds tap (i, j) into the output at rows ``i * dh + sh * y`` and columns
``j * dw + sw * x`` (float32 accumulation), and the begin pads, end pads and ``output_padding``
crop or extend the result: out H = (H - 1) sh + dh (kh - 1) + 1 + output_padding - pad_begin - pad_end.
Negative pads extend the output instead of cropping it (rows no tap reaches hold the bias): ONNX's
``output_shape`` attribute can ask for more rows than the kernel covers, which makes its pads negative.
"""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import as_array, check_bias, Cost, Op, pair, register_op, TensorSpec
from .env import scratch_size


def deconv_out_size(n: int, k: int, s: int, d: int, begin: int, end: int, extra: int) -> int:
    return (n - 1) * s + d * (k - 1) + 1 + extra - begin - end


@register_op
class Deconvolution(Op):
    type = "deconvolution"
    short = "deconv"
    weight_names = ("kernel", "bias")

    def check(self, params, weights):
        k = params.get("num_output_maps")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise NetworkDefinitionError(f"num_output_maps must be a positive int, not {k!r}")
        params["num_output_maps"] = int(k)
        params["kernel_size"] = pair(params.get("kernel_size"), "kernel_size", 1)
        params["stride"] = pair(params.get("stride", 1), "stride", 1)
        params["padding"] = pair(params.get("padding", 0), "padding", -(1 << 30))          # negative: extend
        post = params.get("post_padding")
        params["post_padding"] = params["padding"] if post is None else pair(post, "post_padding", -(1 << 30))
        params["dilation"] = pair(params.get("dilation", 1), "dilation", 1)
        params["output_padding"] = pair(params.get("output_padding", 0), "output_padding", 0)
        for o, s, d in zip(params["output_padding"], params["stride"], params["dilation"]):
            if o >= max(s, d):
                raise NetworkDefinitionError(f"output_padding {params['output_padding']} must be smaller than the "
                                             f"stride or the dilation ({params['stride']}, {params['dilation']}): it "
                                             "only chooses among output sizes the stride makes ambiguous")
        g = params.get("groups", 1)
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g <= 0 or k % g:
            raise NetworkDefinitionError(f"groups={g!r} must be a positive int dividing num_output_maps={k}")
        params["groups"] = int(g)
        w = as_array(weights.get("kernel"), "kernel")
        kh, kw = params["kernel_size"]
        if w.ndim != 4 or w.shape[1] != k // g or w.shape[2:] != (kh, kw):
            raise ShapeError(f"a deconvolution kernel has shape (C, num_output_maps/groups, kh, kw) = "
                             f"(C, {k // g}, {kh}, {kw}), ONNX's ConvTranspose layout; got {w.shape}")
        weights["kernel"] = w
        check_bias(weights, k)
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        if len(x.shape) != 3 or "float" not in x.dtype:
            raise ShapeError(f"deconvolution needs a per-sample float (C, H, W) input, got {x.shape} {x.dtype}")
        c, h, w = x.shape
        g = params["groups"]
        if c != weights["kernel"].shape[0] or c % g:
            raise ShapeError(f"the input has {c} channels; the kernel {weights['kernel'].shape} needs "
                             f"{weights['kernel'].shape[0]} (its first dim), divisible by groups={g}")
        out = [params["num_output_maps"]]
        for i, n in enumerate((h, w)):
            size = deconv_out_size(n, params["kernel_size"][i], params["stride"][i], params["dilation"][i],
                                   params["padding"][i], params["post_padding"][i], params["output_padding"][i])
            if size <= 0:
                raise ShapeError(f"pads {params['padding']}/{params['post_padding']} crop the {h}x{w} deconvolution "
                                 "output to nothing")
            out.append(size)
        return [TensorSpec(tuple(out), x.dtype)]

    @staticmethod
    def _extents(params, h, w):
        """Rows and columns of the accumulator and where the taps start in it: it spans the uncropped
        output (0 .. full) and the output's own span (pad_begin .. pad_begin + out), whichever is wider."""
        rows = []
        for i, n in enumerate((h, w)):
            k, s, d = params["kernel_size"][i], params["stride"][i], params["dilation"][i]
            begin = params["padding"][i]
            out = deconv_out_size(n, k, s, d, begin, params["post_padding"][i], params["output_padding"][i])
            lo, hi = min(0, begin), max((n - 1) * s + d * (k - 1) + 1, begin + out)
            rows.append((hi - lo, -lo))
        return rows

    @staticmethod
    def _shapes(params, shape):
        """Per-sample GEMM operands: the transposed kernel, the input by group, the column matrix."""
        c, h, w = shape
        g = params["groups"]
        m = params["num_output_maps"] // g * params["kernel_size"][0] * params["kernel_size"][1]
        return (g, m, c // g), (g, c // g, h * w), (g, m, h * w)

    def gemms(self, params, inputs, outputs, batch):
        a, b, o = self._shapes(params, inputs[0].shape)
        return [(a, (batch,) + b, (batch,) + o, inputs[0].dtype)]

    def scratch_bytes(self, params, inputs, outputs, batch):
        x = inputs[0]
        _, _, o = self._shapes(params, x.shape)
        (ph, _), (pw, _) = self._extents(params, x.shape[1], x.shape[2])
        cols = batch * int(np.prod(o)) * 4
        acc = 4 * batch * params["num_output_maps"] * ph * pw
        return scratch_size(cols, acc, 4 * params["num_output_maps"])

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        b, c, h, w = x.shape
        g, k = params["groups"], params["num_output_maps"]
        (kh, kw), (sh, sw), (dh, dw) = params["kernel_size"], params["stride"], params["dilation"]
        a_shape, b_shape, o_shape = self._shapes(params, x.shape[1:])
        kern = weights["kernel"].reshape(g, c // g, -1).swapaxes(-1, -2)            # (G, M, C/G), a view
        cols_dtype = np.float32 if env.device_kind == "cpu" else x.dtype
        cols = env.scratch((b,) + o_shape, cols_dtype)
        env.matmul(kern, x.reshape((b,) + b_shape), cols)
        cols = cols.reshape(b, k, kh, kw, h, w)                 # (G, K/G) -> K: group-major, as the output
        (ph, y0), (pw, x0) = self._extents(params, h, w)
        acc = env.scratch((b, k, ph, pw), np.float32)
        acc.fill(0)
        for i in range(kh):
            for j in range(kw):
                r, c = y0 + i * dh, x0 + j * dw
                dst = acc[:, :, r:r + sh * (h - 1) + 1:sh, c:c + sw * (w - 1) + 1:sw]
                dst += cols[:, :, i, j]
        top, left = y0 + params["padding"][0], x0 + params["padding"][1]
        oh, ow = out.shape[2:]
        crop = acc[:, :, top:top + oh, left:left + ow]
        if "bias" in weights:
            crop += env.float32(weights["bias"]).reshape(k, 1, 1)
        xp.copyto(out, crop, casting="unsafe")

    def cost(self, params, inputs, outputs, weights):
        c, h, w = inputs[0].shape
        taps = params["kernel_size"][0] * params["kernel_size"][1]
        macs = c * params["num_output_maps"] // params["groups"] * taps * h * w
        k_bytes = sum(int(np.prod(v.shape)) for v in weights.values()) * outputs[0].itemsize
        return Cost(flops=float(2 * macs + outputs[0].size * ("bias" in weights)),
                    bytes=float(inputs[0].nbytes + outputs[0].nbytes + k_bytes))
