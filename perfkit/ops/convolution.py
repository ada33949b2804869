"""Convolution over (C, H, W) with stride, padding, dilation and groups.

Tactics: ``im2col`` gathers every window into a column matrix (workspace) and runs one GEMM;
``taps`` runs one small GEMM per kernel tap over a strided view of the input, with no column
matrix; ``sample`` (one sample at a time, in cache) and ``batched`` (one GEMM over every sample's
columns) are the CPU forms of ``conv_forms.py`` (on CUDA they run as ``im2col``); ``cudnn`` (CUDA, fp16, one
group) is cuDNN's own convolution with its bias and ReLU fused (``cuda_cudnn.py``), on channels-last tensors
and a kernel stored as (K, kh, kw, C): the builder's layout pass gives it NHWC tensors and inserts reformat
layers where its neighbours want NCHW. A fused layer may add a residual input (ElementWise sum fusion), raise to a power and apply
an activation as an epilogue; batch-norm Scales are folded into the weights by the builder.
"""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import as_array, check_bias, Cost, Op, pair, register_op, TensorSpec
from .env import scratch_size
from . import conv_forms
from .cuda_cudnn import WORKSPACE_BYTES
from .cuda_cudnn import unavailable_reason as cudnn_unavailable
from .epilogue import apply_epilogue, check_epilogue, epilogue_flops, epilogue_scratch

CUDNN = "cudnn"


def conv_out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@register_op
class Convolution(Op):
    type = "convolution"
    short = "conv"
    weight_names = ("kernel", "bias")
    max_inputs = 2           # the second input is a fused residual sum
    tactic_names = ("im2col", "taps") + conv_forms.FORMS + (CUDNN,)
    same_at_batch_one = {"batched": "sample"}      # the builder times one of them at batch 1
    device_tactics = {CUDNN: "cuda"}               # offered on that device kind only
    tactic_layouts = {CUDNN: "nhwc"}               # its data inputs and output are channels-last
    tactic_needs = {CUDNN: cudnn_unavailable}      # cuDNN's Python frontend and library

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
        check_bias(weights, k)
        params.setdefault("tactic", "im2col")
        return check_epilogue(params)

    def applicable_tactics(self, params, inputs):
        direct, _ = self._plan(params, inputs[0].shape, None)
        names = ("im2col",) + conv_forms.FORMS if direct else self.tactic_names[:-1]
        return names + ((CUDNN,) if self._cudnn_fits(params, inputs) else ())

    @staticmethod
    def _cudnn_fits(params, inputs) -> bool:
        """cuDNN's NHWC convolution: float16 storage (fp32 plans were slower than im2col's GEMM and need
        hundreds of MB of workspace; benchmarks/RESULTS.md), one group, non-constant data inputs."""
        return (params["groups"] == 1 and all(t.dtype == "float16" and not t.constant for t in inputs))

    def prepare_tactic(self, tactic, params, weights):
        """``cudnn`` stores the kernel as (K, kh, kw, C); every other tactic as (K, C, kh, kw)."""
        source = params.get("tactic", "im2col")
        out = {**params, "tactic": tactic}
        if (source == CUDNN) == (tactic == CUDNN):
            return out, weights
        axes = (0, 2, 3, 1) if tactic == CUDNN else (0, 3, 1, 2)
        return out, {**weights, "kernel": np.ascontiguousarray(np.asarray(weights["kernel"]).transpose(axes))}

    def cpu_losers(self, params, inputs) -> tuple:
        """Tactics that cannot win on the CPU here (the builder does not time them): for a 1x1 kernel
        ``taps`` is one strided copy and one GEMM, the same work as ``sample``'s exact form."""
        return ("taps",) if params["kernel_size"] == (1, 1) else ()

    def infer(self, params, inputs, weights):
        x = inputs[0]
        if len(x.shape) != 3:
            raise ShapeError(f"convolution needs a per-sample (C, H, W) input, got {x.shape}")
        c, h, w = x.shape
        g = params["groups"]
        kernel_c = weights["kernel"].shape[3 if params.get("tactic") == CUDNN else 1]
        if c % g or kernel_c != c // g:
            raise ShapeError(f"input has {c} channels; with groups={g} the kernel needs "
                             f"{c // g if c % g == 0 else 'C divisible by groups'} input channels per group, "
                             f"kernel shape is {weights['kernel'].shape}")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (params[k] for k in ("kernel_size", "stride", "padding", "dilation"))
        oh, ow = conv_out_size(h, kh, sh, ph, dh), conv_out_size(w, kw, sw, pw, dw)
        if oh <= 0 or ow <= 0:
            raise ShapeError(f"a {kh}x{kw} kernel (dilation {dh}x{dw}, padding {ph}x{pw}) does not fit "
                             f"an input of {h}x{w}")
        out = (params["num_output_maps"], oh, ow)
        if len(inputs) == 2 and tuple(inputs[1].shape) != out:
            raise ShapeError(f"the fused residual input has shape {inputs[1].shape}, the output {out}")
        return [TensorSpec(out, x.dtype)]

    def _plan(self, params, x_shape, out_shape):
        c, h, w = x_shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (params[k] for k in ("kernel_size", "stride", "padding", "dilation"))
        direct = (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0)
        return direct, (h + 2 * ph, w + 2 * pw)

    def workspace(self, params, inputs, outputs, batch, device_kind=None):
        if params.get("tactic") == CUDNN:       # cuDNN's plan (limited to this) and the epilogue's scratch
            return scratch_size(WORKSPACE_BYTES, *epilogue_scratch(params, batch * outputs[0].size, outputs[0].dtype))
        # the CPU forms run as im2col on CUDA: their workspace depends on the device
        if params.get("tactic") not in conv_forms.FORMS:
            return super().workspace(params, inputs, outputs, batch, device_kind)
        cpu = conv_forms.scratch_bytes(params, inputs[0], outputs[0], batch, len(inputs) > 1)
        if device_kind == "cpu":
            return cpu
        cuda = super().workspace({**params, "tactic": "im2col"}, inputs, outputs, batch, device_kind)
        return cuda if device_kind is not None else max(cpu, cuda)

    def scratch_bytes(self, params, inputs, outputs, batch):
        x, o = inputs[0], outputs[0]
        direct, (hp, wp) = self._plan(params, x.shape, o.shape)
        c, (k, oh, ow) = x.shape[0], o.shape
        kh, kw = params["kernel_size"]
        g = params["groups"]
        epilogue = epilogue_scratch(params, batch * o.size, o.dtype)
        if direct:
            return scratch_size(*epilogue)
        padded = batch * c * hp * wp * x.itemsize if params["padding"] != (0, 0) else 0
        if params.get("tactic") == "taps":      # float32: one tap of the input and the kernel, a product, a sum
            acc = 0 if o.dtype == "float32" else 4 * batch * o.size
            return scratch_size(padded, 4 * k * (c // g), 4 * batch * c * oh * ow, 4 * batch * o.size, acc, *epilogue)
        return scratch_size(padded, batch * c * kh * kw * oh * ow * x.itemsize, *epilogue)

    def gemms(self, params, inputs, outputs, batch):
        if params.get("tactic") == CUDNN:
            return []
        if params.get("tactic") in conv_forms.FORMS:
            return []                           # float32 columns and weights of their own (see workspace)
        if params.get("tactic") == "taps" and not self._plan(params, inputs[0].shape, None)[0]:
            return []                           # the taps multiply float32 copies they make themselves
        c, (k, oh, ow) = inputs[0].shape[0], outputs[0].shape
        g = params["groups"]
        kh, kw = params["kernel_size"]
        r, p = c // g * kh * kw, oh * ow
        if g == 1:
            return [((k, r), (batch, r, p), (batch, k, p), outputs[0].dtype)]
        return [((g, k // g, r), (batch, g, r, p), (batch, g, k // g, p), outputs[0].dtype)]

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
        tactic = params["tactic"]
        if tactic == CUDNN:
            self._cudnn(env, ins, out, params, weights)
            return
        if tactic in conv_forms.FORMS:
            if env.device_kind == "cpu":
                conv_forms.run(env, x, out, weights["kernel"], weights.get("bias"), params,
                               ins[1] if len(ins) > 1 else None)
                return
            tactic = "im2col"
        if env.device_kind == "cuda" and tactic == "im2col" and self._cuda_fused(env, ins, out, params, weights,
                                                                                      direct, (oh, ow)):
            return
        if not direct:
            if ph or pw:
                padded = env.scratch((b, c, hp, wp), x.dtype)
                padded.fill(0)
                padded[:, :, ph:ph + h, pw:pw + w] = x
            else:
                padded = xp.ascontiguousarray(x)
        if direct:
            cols = x.reshape(b, g, cg, h * w)
        elif tactic == "taps":
            self._taps(env, padded, out, weights["kernel"], params, (oh, ow))
            cols = None
        else:
            s = padded.strides
            win = xp.lib.stride_tricks.as_strided(
                padded, shape=(b, g, cg, kh, kw, oh, ow),
                strides=(s[0], cg * s[1], s[1], dh * s[2], dw * s[3], sh * s[2], sw * s[3]))
            cols = env.scratch((b, g, cg, kh, kw, oh, ow), x.dtype)
            cols[...] = win
            cols = cols.reshape(b, g, cg * kh * kw, oh * ow)
        if cols is not None and g == 1:
            env.matmul(wmat[0], cols.reshape(b, cg * kh * kw, oh * ow), out.reshape(b, kg, oh * ow))
        elif cols is not None:
            env.matmul(wmat, cols, out.reshape(b, g, kg, oh * ow))
        if "bias" in weights:
            xp.add(out, weights["bias"].reshape(k, 1, 1), out=out)
        apply_epilogue(env, out, params, ins[1] if len(ins) > 1 else None)

    @staticmethod
    def _cudnn(env, ins, out, params, weights) -> None:
        """cuDNN's convolution + bias (+ ReLU when it is the whole epilogue), then the rest of the epilogue (a
        power, the residual sum, another activation) as element-wise work over the same NHWC memory."""
        from . import cuda_cudnn
        act, power = params.get("activation"), params.get("power")
        residual = ins[1] if len(ins) > 1 else None
        only_relu = act is not None and act["kind"] == "relu" and power is None and residual is None
        cuda_cudnn.conv(env, ins[0], weights["kernel"], weights.get("bias"), out, params, only_relu)
        if only_relu or (act is None and power is None and residual is None):
            return
        phys = out.transpose(0, 2, 3, 1)                 # the contiguous NHWC memory
        if residual is not None:
            if not cuda_cudnn.channels_last(residual):
                raise cuda_cudnn.CudnnUnavailable("the fused residual input of a cudnn convolution must be NHWC")
            residual = residual.transpose(0, 2, 3, 1)
        if act is None or act["kind"] == "relu":
            from .cuda_kernels import epilogue
            epilogue(phys, None, power, residual, act is not None)
        else:
            apply_epilogue(env, phys, params, residual)

    @staticmethod
    def _cuda_fused(env, ins, out, params, weights, direct, size) -> bool:
        """GPU path: one im2col kernel, one cuBLAS GEMM per group, one epilogue kernel."""
        act = params.get("activation")
        if act and act["kind"] != "relu":
            return False
        from .cuda_kernels import epilogue, im2col
        xp = env.xp
        x = xp.ascontiguousarray(ins[0])
        b, c = x.shape[:2]
        k = out.shape[1]
        g = params["groups"]
        kh, kw = params["kernel_size"]
        r, p = (c // g) * kh * kw, size[0] * size[1]
        if direct:
            cols = x.reshape(b, g, r, p)
        else:
            cols = env.scratch((b, g, r, p), x.dtype)
            im2col(x, cols, params["kernel_size"], params["stride"], params["padding"], params["dilation"], size)
        wmat = weights["kernel"].reshape(g, k // g, r)
        if g == 1:
            env.matmul(wmat[0], cols.reshape(b, r, p), out.reshape(b, k, p))
        else:
            env.matmul(wmat, cols, out.reshape(b, g, k // g, p))
        residual = ins[1] if len(ins) > 1 else None
        if residual is not None and residual.dtype != out.dtype:
            residual = residual.astype(out.dtype)
        if "bias" in weights or params.get("power") is not None or residual is not None or act:
            epilogue(out, weights.get("bias"), params.get("power"),
                     None if residual is None else xp.ascontiguousarray(residual), bool(act))
        return True

    @staticmethod
    def _taps(env, padded, out, kernel, params, size):
        """Sum over kernel taps of (K/g, C/g) @ a strided view of the input: no column matrix. Each
        tap's input and weights are copied to float32 scratch, so the products run in float32."""
        xp = env.xp
        b, c = padded.shape[:2]
        k = out.shape[1]
        g = params["groups"]
        cg, kg = c // g, k // g
        (kh, kw), (sh, sw), (dh, dw) = params["kernel_size"], params["stride"], params["dilation"]
        oh, ow = size
        wtap = env.scratch((g, kg, cg), np.float32)
        tap = env.scratch((b, g, cg, oh, ow), np.float32)
        prod = env.scratch((b, g, kg, oh * ow), np.float32)
        acc = out if out.dtype == np.float32 else env.scratch(out.shape, np.float32)
        acc = acc.reshape(b, g, kg, oh * ow)
        first = True
        for a in range(kh):
            for t in range(kw):
                view = padded[:, :, a * dh:a * dh + sh * (oh - 1) + 1:sh, t * dw:t * dw + sw * (ow - 1) + 1:sw]
                xp.copyto(tap, view.reshape(b, g, cg, oh, ow), casting="unsafe")
                xp.copyto(wtap, kernel[:, :, a, t].reshape(g, kg, cg), casting="unsafe")
                env.matmul(wtap, tap.reshape(b, g, cg, oh * ow), acc if first else prod)
                if not first:
                    acc += prod
                first = False
        if out.dtype != np.float32:
            xp.copyto(out, acc.reshape(out.shape), casting="unsafe")

    def cost(self, params, inputs, outputs, weights):
        kh, kw = params["kernel_size"]
        cg = inputs[0].shape[0] // params["groups"]
        o = outputs[0]
        wbytes = weights["kernel"].size * o.itemsize
        return Cost(flops=2.0 * o.size * cg * kh * kw + (o.size if "bias" in weights else 0)
                    + epilogue_flops(params, o.size) + (o.size if len(inputs) > 1 else 0),
                    bytes=float(sum(t.nbytes for t in inputs) + o.nbytes + wbytes))

