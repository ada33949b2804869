"""Gather: picks entries of ``data`` along one axis with int32 ``indices`` (embedding lookup).

Either input may be a constant (no batch dimension): constant indices pick the same entries for
every sample; a constant ``data`` table looked up with per-sample indices is an embedding.
"""
from __future__ import annotations

from ..errors import ShapeError
from .base import Cost, Op, TensorSpec, norm_axis, register_op


@register_op
class Gather(Op):
    type = "gather"
    short = "gather"
    min_inputs = max_inputs = 2

    def check(self, params, weights):
        params["axis"] = params.get("axis", 0)
        return params

    def infer(self, params, inputs, weights):
        data, idx = inputs
        if idx.dtype != "int32":
            raise ShapeError(f"gather indices must be int32, got {idx.dtype}")
        axis = norm_axis(params["axis"], len(data.shape), "gather axis")
        params["axis"] = axis
        params["data_constant"] = bool(data.constant)
        params["indices_constant"] = bool(idx.constant)
        shape = data.shape[:axis] + tuple(idx.shape) + data.shape[axis + 1:]
        return [TensorSpec(shape, data.dtype, constant=data.constant and idx.constant)]

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        data, idx = ins
        out = outs[0]
        axis = params["axis"]
        if params["indices_constant"] and not params["data_constant"]:
            out[...] = xp.take(data, idx, axis=axis + 1)
        elif params["data_constant"] and not params["indices_constant"]:
            r = xp.take(data, idx, axis=axis)          # data.shape[:axis] + (b,) + idx + rest
            out[...] = xp.moveaxis(r, axis, 0) if axis else r
        elif params["data_constant"]:
            out[...] = xp.take(data, idx, axis=axis)   # constant folding path (batch added by caller)
        else:
            for i in range(out.shape[0]):
                out[i] = xp.take(data[i], idx[i], axis=axis)

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=0.0, bytes=float(2 * outputs[0].nbytes + inputs[1].nbytes))
