"""Gather: picks entries of ``data`` along one axis with int32 ``indices`` (embedding lookup).

Either input may be a constant (no batch dimension): constant indices pick the same entries for
every sample; a constant ``data`` table looked up with per-sample indices is an embedding.
"""
from __future__ import annotations

import numpy as np

from ..errors import ExecutionError, ShapeError
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
            _take(xp, data, idx, axis + 1, out)
        elif params["data_constant"] and not params["indices_constant"]:
            if axis == 0:                              # (b,) + indices + rest: the output's layout
                _take(xp, data, idx, 0, out)
            else:
                for i in range(out.shape[0]):
                    _take(xp, data, idx[i], axis, out[i])
        elif params["data_constant"]:
            out[...] = xp.take(data, idx, axis=axis)   # constant folding path (batch added by caller)
        else:
            for i in range(out.shape[0]):
                _take(xp, data[i], idx[i], axis, out[i])

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=0.0, bytes=float(2 * outputs[0].nbytes + inputs[1].nbytes))


def _take(xp, data, idx, axis: int, out) -> None:
    """out = take(data, idx, axis), written straight into ``out``. Indices count from the end when
    negative, as in Python; out of range they raise (NumPy); CuPy wraps them."""
    if xp is np:
        n = data.shape[axis]
        if idx.size:
            lo, hi = int(idx.min()), int(idx.max())
            if lo < -n or hi >= n:
                raise ExecutionError(f"gather indices run from {lo} to {hi}; axis {axis} of the data has "
                                     f"{n} entries, so indices must lie in [{-n}, {n})")
        np.take(data, idx, axis=axis, out=out, mode="wrap")   # in range, "wrap" is Python's indexing
    else:
        xp.take(data, idx, axis=axis, out=out)
