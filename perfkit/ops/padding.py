"""Padding: zero padding (or cropping, with negative amounts) of the last two per-sample dims."""
from __future__ import annotations

from ..errors import ShapeError
from .base import Cost, Op, TensorSpec, register_op


def _pair_signed(v, what):
    if isinstance(v, int):
        return (v, v)
    try:
        a, b = (int(x) for x in v)
    except (TypeError, ValueError):
        raise ShapeError(f"{what} must be an int or a pair of ints, not {v!r}") from None
    return (a, b)


@register_op
class Padding(Op):
    type = "padding"
    short = "pad"

    def check(self, params, weights):
        params["pre_padding"] = _pair_signed(params.get("pre_padding", 0), "pre_padding")
        params["post_padding"] = _pair_signed(params.get("post_padding", 0), "post_padding")
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        if len(x.shape) < 2:
            raise ShapeError(f"padding needs a per-sample rank >= 2 (..., H, W), got {x.shape}")
        (a, b), (c, d) = params["pre_padding"], params["post_padding"]
        h, w = x.shape[-2] + a + c, x.shape[-1] + b + d
        if h <= 0 or w <= 0:
            raise ShapeError(f"padding {params['pre_padding']}/{params['post_padding']} crops {x.shape} to nothing")
        return [TensorSpec(x.shape[:-2] + (h, w), x.dtype)]

    def compute(self, env, ins, outs, params, weights):
        x, out = ins[0], outs[0]
        (a, b), _ = params["pre_padding"], params["post_padding"]
        h, w = x.shape[-2:]
        oh, ow = out.shape[-2:]
        # source rows [sy0, sy1) land at output rows [sy0 + a, sy1 + a)
        sy0, sy1 = max(0, -a), min(h, oh - a)
        sx0, sx1 = max(0, -b), min(w, ow - b)
        out.fill(0)
        if sy1 > sy0 and sx1 > sx0:
            out[..., sy0 + a:sy1 + a, sx0 + b:sx1 + b] = x[..., sy0:sy1, sx0:sx1]

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=0.0, bytes=float(inputs[0].nbytes + outputs[0].nbytes))
