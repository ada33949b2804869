"""SoftMax over one per-sample axis (default 0, the channel axis), computed in float32."""
from __future__ import annotations

import numpy as np

from .base import Cost, Op, norm_axis, register_op, TensorSpec


@register_op
class SoftMax(Op):
    type = "softmax"
    short = "softmax"

    def check(self, params, weights):
        params["axis"] = params.get("axis", 0)
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        params["axis"] = norm_axis(params["axis"], len(x.shape), "softmax axis")
        return [TensorSpec(x.shape, x.dtype)]

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        axis = params["axis"] + 1
        y = x.astype(np.float32)
        y = y - y.max(axis=axis, keepdims=True)
        xp.exp(y, out=y)
        y /= y.sum(axis=axis, keepdims=True)
        out[...] = y

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=float(outputs[0].size * 5), bytes=float(inputs[0].nbytes + outputs[0].nbytes))
