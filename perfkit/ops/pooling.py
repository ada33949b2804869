"""Pooling: max or average over 2-D windows of a (C, H, W) input."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, pair, register_op, TensorSpec
from .env import scratch_size
from .reductions import reduce_into

#: bytes of one padded block of channels that the ``rows`` tactic reduces at a time (within L2)
ROWS_BLOCK_BYTES = 1 << 19

#: the CUDA tactics: one kernel launch (cuda_kernels.pool), in the default layout or channels-last
KERNELS = ("kernel", "kernel_nhwc")


@register_op
class Pooling(Op):
    """Tactics: ``strided`` reduces a strided window view in one call; ``taps`` combines one
    shifted slice per window position (kh*kw element-wise passes, no window view); ``rows`` is
    separable: it reduces along each row (kw - 1 passes) then across rows (kh - 1 passes), a block of
    channels of one sample at a time so that the passes stay in cache (:data:`ROWS_BLOCK_BYTES`), and
    never copies the padding (each tap reaches only the outputs whose window covers it). On CUDA,
    ``kernel`` is one launch of :func:`perfkit.ops.cuda_kernels.pool` (a thread per output value, in any
    strides), and ``kernel_nhwc`` the same on channels-last tensors, so that a pooling layer between cuDNN's
    NHWC convolutions (a ResNet's stem) needs no reformat layers around it."""

    type = "pooling"
    short = "pool"
    tactic_names = ("strided", "taps", "rows") + KERNELS
    device_tactics = {t: "cuda" for t in KERNELS}
    tactic_layouts = {"kernel_nhwc": "nhwc"}     # its input and output are channels-last

    def check(self, params, weights):
        if params.get("pool") not in ("max", "avg"):
            raise NetworkDefinitionError(f"pooling type must be 'max' or 'avg', not {params.get('pool')!r}")
        params["window"] = pair(params.get("window"), "window", 1)
        params["stride"] = pair(params.get("stride") or params["window"], "stride", 1)
        params["padding"] = pair(params.get("padding", 0), "padding", 0)
        params["exclude_padding"] = bool(params.get("exclude_padding", True))
        params.setdefault("tactic", "strided")
        if any(p >= w for p, w in zip(params["padding"], params["window"])):
            raise NetworkDefinitionError(f"padding {params['padding']} must be smaller than the window {params['window']}")
        return params

    def applicable_tactics(self, params, inputs) -> tuple:
        """The CUDA kernels take float16 and float32 tensors (CuPy's bfloat16 is not there to test them)."""
        if inputs and inputs[0].dtype in ("float16", "float32"):
            return self.tactic_names
        return tuple(t for t in self.tactic_names if t not in KERNELS)

    def cpu_losers(self, params, inputs) -> tuple:
        """Tactics that cannot win on the CPU here (the builder does not time them): ``strided`` reduces
        each window in a NumPy inner loop of kh*kw strided values, which only pays off when there are
        fewer windows than values per window (global pooling); many small windows take 10-20x as long."""
        (kh, kw), (sh, sw), (ph, pw) = params["window"], params["stride"], params["padding"]
        _, h, w = inputs[0].shape
        windows = ((h + 2 * ph - kh) // sh + 1) * ((w + 2 * pw - kw) // sw + 1)
        return ("strided",) if windows > kh * kw else ()

    def infer(self, params, inputs, weights):
        x = inputs[0]
        if len(x.shape) != 3:
            raise ShapeError(f"pooling needs a per-sample (C, H, W) input, got {x.shape}")
        c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = params["window"], params["stride"], params["padding"]
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if oh <= 0 or ow <= 0:
            raise ShapeError(f"a {kh}x{kw} window does not fit an input of {h}x{w} with padding {ph}x{pw}")
        return [TensorSpec((c, oh, ow), x.dtype)]

    def scratch_bytes(self, params, inputs, outputs, batch):
        (c, h, w), (oh, ow) = inputs[0].shape, outputs[0].shape[1:]
        ph, pw = params["padding"]
        if params.get("tactic") in KERNELS:
            return 0
        if params.get("tactic") == "rows":
            block, acc = self._rows_plan(params, inputs[0])
            counts = 4 * oh * ow if params["pool"] == "avg" and params["exclude_padding"] and (ph or pw) else 0
            sums = 0 if outputs[0].dtype == "float32" or params["pool"] == "max" else 4 * block * oh * ow
            return scratch_size(block * h * ow * acc, sums, counts)
        padded = batch * c * (h + 2 * ph) * (w + 2 * pw) * inputs[0].itemsize if ph or pw else 0
        if params["pool"] == "max":
            return scratch_size(padded)
        total = 0 if outputs[0].dtype == "float32" else 4 * batch * c * oh * ow     # float32 sums
        counts = 4 * oh * ow if params["exclude_padding"] and (ph or pw) else 0
        return scratch_size(padded, total, counts)

    @staticmethod
    def _counts(xp, n, k, s, p, o):
        start = np.arange(o) * s - p
        return np.minimum(start + k, n) - np.maximum(start, 0)

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        b, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = params["window"], params["stride"], params["padding"]
        oh, ow = out.shape[2:]
        if params["tactic"] in KERNELS:
            from .cuda_kernels import pool
            pool(x, out, params["pool"], (kh, kw), (sh, sw), (ph, pw), params["exclude_padding"])
            return
        if params["tactic"] == "rows":
            self._rows(env, x, out, params)
            return
        if ph or pw:
            padded = env.scratch((b, c, h + 2 * ph, w + 2 * pw), x.dtype)
            padded.fill(-np.inf if params["pool"] == "max" else 0)
            padded[:, :, ph:ph + h, pw:pw + w] = x
        else:
            padded = xp.ascontiguousarray(x)
        if params["pool"] == "max":
            if params["tactic"] == "taps":
                for a in range(kh):
                    for t in range(kw):
                        tap = padded[:, :, a:a + sh * (oh - 1) + 1:sh, t:t + sw * (ow - 1) + 1:sw]
                        if a == 0 and t == 0:
                            out[...] = tap
                        else:
                            xp.maximum(out, tap, out=out)
            else:
                reduce_into(xp, "max", self._windows(xp, padded, (oh, ow), params), (4, 5), out[..., None, None])
            return
        total = out if out.dtype == np.float32 else env.scratch(out.shape, np.float32)
        if params["tactic"] == "taps":
            for a in range(kh):
                for t in range(kw):
                    tap = padded[:, :, a:a + sh * (oh - 1) + 1:sh, t:t + sw * (ow - 1) + 1:sw]
                    if a == 0 and t == 0:
                        xp.copyto(total, tap, casting="unsafe")
                    elif tap.dtype == np.float32:
                        total += tap
                    else:
                        xp.add(total, tap, out=total, dtype=np.float32)
        else:
            reduce_into(xp, "sum", self._windows(xp, padded, (oh, ow), params), (4, 5), total[..., None, None])
        if params["exclude_padding"] and (ph or pw):
            divisor = env.scratch((oh, ow), np.float32)
            self._divisor(xp, divisor, (h, w), (kh, kw), (sh, sw), (ph, pw), (oh, ow))
            xp.divide(total, divisor, out=total)
        else:
            xp.divide(total, float(kh * kw), out=total)
        if total is not out:
            xp.copyto(out, total, casting="unsafe")

    @classmethod
    def _divisor(cls, xp, divisor, size, window, stride, pad, out_size) -> None:
        """The count of input values in each window (padding excluded), into ``divisor`` on either device."""
        (h, w), (kh, kw), (sh, sw), (ph, pw), (oh, ow) = size, window, stride, pad, out_size
        if xp is np:
            np.outer(cls._counts(xp, h, kh, sh, ph, oh), cls._counts(xp, w, kw, sw, pw, ow), out=divisor)
        else:
            from .cuda_kernels import pool_counts
            pool_counts(divisor, (h, w), (kh, kw), (sh, sw), (ph, pw))

    @staticmethod
    def _rows_plan(params, x: TensorSpec) -> tuple:
        """(channels per block, bytes per accumulated value) of the ``rows`` tactic."""
        c, h, w = x.shape
        acc = x.itemsize if params["pool"] == "max" else 4
        return max(1, min(c, ROWS_BLOCK_BYTES // (h * w * acc))), acc

    def _rows(self, env, x, out, params) -> None:
        """Separable pooling with the padding never copied: each tap combines only the outputs whose
        window position falls inside the input (a tap covering every output goes first and sets them)."""
        xp = env.xp
        b, c, h, w = x.shape
        oh, ow = out.shape[2:]
        (kh, kw), (sh, sw), (ph, pw) = params["window"], params["stride"], params["padding"]
        block, _ = self._rows_plan(params, TensorSpec(x.shape[1:], x.dtype.name))
        is_max = params["pool"] == "max"
        dtype = x.dtype if is_max else np.float32
        combine = xp.maximum if is_max else xp.add
        across = _spans(w, ow, kw, sw, pw)                      # taps along a row
        down = _spans(h, oh, kh, sh, ph)                        # taps across rows
        rows = env.scratch((block, h, ow), dtype)
        sums = None if out.dtype == dtype else env.scratch((block, oh, ow), np.float32)
        divisor = None
        if not is_max and params["exclude_padding"] and (ph or pw):
            divisor = env.scratch((oh, ow), np.float32)
            self._divisor(xp, divisor, (h, w), (kh, kw), (sh, sw), (ph, pw), (oh, ow))
        for i in range(b):
            for c0 in range(0, c, block):
                n = min(block, c - c0)
                r = rows[:n]
                _combine_taps(xp, combine, is_max, x[i, c0:c0 + n], r, across, sw, 2)
                dst = out[i, c0:c0 + n]
                acc = dst if sums is None else sums[:n]             # avg of fp16: sums in float32
                _combine_taps(xp, combine, is_max, r, acc, down, sh, 1)
                if not is_max:
                    xp.divide(acc, divisor if divisor is not None else float(kh * kw), out=acc)
                if acc is not dst:
                    xp.copyto(dst, acc, casting="unsafe")

    @staticmethod
    def _windows(xp, padded, size, params):
        """A (B, C, OH, OW, kh, kw) view of every pooling window (no copy)."""
        (kh, kw), (sh, sw) = params["window"], params["stride"]
        oh, ow = size
        s = padded.strides
        return xp.lib.stride_tricks.as_strided(padded, shape=padded.shape[:2] + (oh, ow, kh, kw),
                                               strides=(s[0], s[1], sh * s[2], sw * s[3], s[2], s[3]))

    def cost(self, params, inputs, outputs, weights):
        kh, kw = params["window"]
        return Cost(flops=float(outputs[0].size * kh * kw), bytes=float(inputs[0].nbytes + outputs[0].nbytes))


def _spans(n_in: int, n_out: int, k: int, stride: int, pad: int) -> list:
    """Per window tap ``t``: (first output, end output, first input) of the outputs whose tap falls inside
    the input (output ``j`` reads input ``stride * j + t - pad``); taps covering every output first."""
    spans = []
    for t in range(k):
        o0 = max(0, -(-(pad - t) // stride))
        o1 = min(n_out, (n_in - 1 + pad - t) // stride + 1)
        if o1 > o0:
            spans.append((o0, o1, stride * o0 + t - pad))
    return sorted(spans, key=lambda s: s[1] - s[0] != n_out)


def _combine_taps(xp, combine, is_max, src, dst, spans, stride, axis) -> None:
    """``dst`` = the max (or sum) over ``spans`` of ``src``'s strided slices along ``axis`` (1: rows, 2:
    columns); outputs no tap covers hold -inf (or 0)."""
    n_out = dst.shape[axis]
    for k, (o0, o1, i0) in enumerate(spans):
        count = o1 - o0
        tap = src[:, i0:i0 + stride * (count - 1) + 1:stride] if axis == 1 else \
            src[:, :, i0:i0 + stride * (count - 1) + 1:stride]
        part = dst[:, o0:o1] if axis == 1 else dst[:, :, o0:o1]
        if k == 0:
            if count != n_out:
                dst.fill(-np.inf if is_max else 0)
                combine(part, tap, out=part)
            else:
                xp.copyto(part, tap, casting="unsafe")
        else:
            combine(part, tap, out=part)
