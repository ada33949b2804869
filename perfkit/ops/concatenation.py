"""Concatenation of several tensors along one per-sample axis (default 0, the channel axis)."""
from __future__ import annotations

from ..errors import ShapeError
from .base import Cost, Op, TensorSpec, norm_axis, register_op


@register_op
class Concatenation(Op):
    type = "concatenation"
    short = "concat"
    min_inputs = 1
    max_inputs = None

    def check(self, params, weights):
        params["axis"] = params.get("axis", 0)
        return params

    def infer(self, params, inputs, weights):
        first = inputs[0]
        rank = len(first.shape)
        axis = norm_axis(params["axis"], rank, "concatenation axis")
        params["axis"] = axis
        total = 0
        for t in inputs:
            if len(t.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis):
                raise ShapeError(f"cannot concatenate per-sample shapes {[tuple(t.shape) for t in inputs]} "
                                 f"along axis {axis}: all other dimensions must match")
            total += t.shape[axis]
        shape = list(first.shape)
        shape[axis] = total
        dtype = next((t.dtype for t in inputs if not t.constant), first.dtype)
        return [TensorSpec(tuple(shape), dtype)]

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        out = outs[0]
        b = out.shape[0]
        axis = params["axis"] + 1
        parts = [x if x.ndim == out.ndim else xp.broadcast_to(x, (b,) + x.shape) for x in ins]
        start = 0
        for x in parts:
            n = x.shape[axis]
            index = [slice(None)] * out.ndim
            index[axis] = slice(start, start + n)
            out[tuple(index)] = x
            start += n

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=0.0, bytes=float(2 * outputs[0].nbytes))
