"""TopK: the k largest (or smallest) values along one per-sample axis, and their int32 indices."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, TensorSpec, norm_axis, register_op


@register_op
class TopK(Op):
    type = "topk"
    short = "topk"
    output_names = ("values", "indices")

    def check(self, params, weights):
        if params.get("op") not in ("max", "min"):
            raise NetworkDefinitionError(f"top-k op must be 'max' or 'min', not {params.get('op')!r}")
        k = params.get("k")
        if not isinstance(k, int) or k <= 0:
            raise NetworkDefinitionError(f"k must be a positive int, not {k!r}")
        params["axis"] = params.get("axis", -1)
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        axis = norm_axis(params["axis"], len(x.shape), "top-k axis")
        params["axis"] = axis
        if params["k"] > x.shape[axis]:
            raise ShapeError(f"k={params['k']} is larger than axis {axis} of the input {x.shape}")
        shape = list(x.shape)
        shape[axis] = params["k"]
        return [TensorSpec(tuple(shape), x.dtype), TensorSpec(tuple(shape), "int32")]

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x = ins[0]
        axis = params["axis"] + 1
        key = -x.astype(np.float32) if params["op"] == "max" else x
        if xp is np:
            order = np.argsort(key, axis=axis, kind="stable")
        else:
            order = xp.argsort(key, axis=axis)
        idx = xp.take(order, xp.arange(params["k"]), axis=axis)
        outs[0][...] = xp.take_along_axis(x, idx, axis=axis)
        outs[1][...] = idx

    def cost(self, params, inputs, outputs, weights):
        n = inputs[0].size
        return Cost(flops=float(n * max(1, int(np.log2(max(2, inputs[0].shape[params["axis"]]))))),
                    bytes=float(inputs[0].nbytes + sum(o.nbytes for o in outputs)))
