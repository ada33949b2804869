"""ParametricReLU: ONNX ``PRelu``, ``x`` where ``x >= 0`` else ``slope * x``, with a slope tensor.

The slope broadcasts to the input (1-sized dims; a per-channel slope of a (C, H, W) input has shape
(C, 1, 1)) and is usually a constant, which may also have fewer dims (NumPy's rule, as ONNX's PRelu
broadcasts: (W,) for a (C, H, W) input); a slope computed per sample has the input's rank.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .base import Cost, Op, TensorSpec, broadcast_shapes, register_op
from .env import scratch_size


@register_op
class ParametricReLU(Op):
    type = "parametric_relu"
    short = "prelu"
    min_inputs = max_inputs = 2

    def infer(self, params, inputs, weights):
        x, slope = inputs
        if "float" not in x.dtype or "float" not in slope.dtype:
            raise ShapeError(f"parametric ReLU needs float input and slope, got {x.dtype} and {slope.dtype}")
        shape = tuple(slope.shape)
        if slope.constant and len(shape) < len(x.shape):        # NumPy's rule: a constant has no batch dim
            shape = (1,) * (len(x.shape) - len(shape)) + shape
        if broadcast_shapes(x.shape, shape, "parametric ReLU") != tuple(x.shape):
            raise ShapeError(f"the slope {slope.shape} must broadcast to the input {x.shape} (1-sized dims "
                             "only), not enlarge it")
        return [TensorSpec(x.shape, x.dtype)]

    def scratch_bytes(self, params, inputs, outputs, batch):
        x, slope = inputs
        count = 4 * batch * x.size
        own = [count] * (2 if x.dtype != "float32" else 0)          # x in float32, the result in float32
        s = 0 if slope.dtype == "float32" else 4 * slope.size * (1 if slope.constant else batch)
        return scratch_size(*own, s, count)

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, slope = ins
        out = outs[0]
        x32, s32 = env.float32(x), env.float32(slope)
        y = out if out.dtype == np.float32 else env.scratch(out.shape, np.float32)
        t = env.scratch(out.shape, np.float32)
        xp.minimum(x32, 0, out=t)
        t *= s32
        xp.maximum(x32, 0, out=y)
        y += t
        if y is not out:
            xp.copyto(out, y, casting="unsafe")

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=float(3 * outputs[0].size),
                    bytes=float(sum(t.nbytes for t in inputs if not t.constant) + outputs[0].nbytes))
