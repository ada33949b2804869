"""Pooling: max or average over 2-D windows of a (C, H, W) input."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, pair, register_op, TensorSpec


@register_op
class Pooling(Op):
    """Tactics: ``strided`` reduces a strided window view in one call; ``taps`` combines one
    shifted slice per window position (kh*kw element-wise passes, no window view)."""

    type = "pooling"
    short = "pool"
    tactic_names = ("strided", "taps")

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

    def workspace(self, params, inputs, outputs, batch):
        if params["padding"] == (0, 0):
            return 0
        c, h, w = inputs[0].shape
        ph, pw = params["padding"]
        return batch * c * (h + 2 * ph) * (w + 2 * pw) * inputs[0].itemsize + 256

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
        if ph or pw:
            padded = env.scratch((b, c, h + 2 * ph, w + 2 * pw), x.dtype)
            padded.fill(-np.inf if params["pool"] == "max" else 0)
            padded[:, :, ph:ph + h, pw:pw + w] = x
        else:
            padded = xp.ascontiguousarray(x)
        if params["tactic"] == "taps":
            total = None
            for a in range(kh):
                for t in range(kw):
                    tap = padded[:, :, a:a + sh * (oh - 1) + 1:sh, t:t + sw * (ow - 1) + 1:sw]
                    if params["pool"] == "max":
                        if a == 0 and t == 0:
                            out[...] = tap
                        else:
                            xp.maximum(out, tap, out=out)
                    else:
                        total = tap.astype(np.float32) if total is None else total + tap
            if params["pool"] == "max":
                return
        else:
            s = padded.strides
            win = xp.lib.stride_tricks.as_strided(padded, shape=(b, c, oh, ow, kh, kw),
                                                  strides=(s[0], s[1], sh * s[2], sw * s[3], s[2], s[3]))
            if params["pool"] == "max":
                out[...] = win.max(axis=(4, 5))
                return
            total = win.sum(axis=(4, 5), dtype=np.float32)
        if params["exclude_padding"] and (ph or pw):
            counts = np.outer(self._counts(xp, h, kh, sh, ph, oh), self._counts(xp, w, kw, sw, pw, ow))
            out[...] = total / xp.asarray(counts.astype(np.float32))
        else:
            out[...] = total / float(kh * kw)

    def cost(self, params, inputs, outputs, weights):
        kh, kw = params["window"]
        return Cost(flops=float(outputs[0].size * kh * kw), bytes=float(inputs[0].nbytes + outputs[0].nbytes))
