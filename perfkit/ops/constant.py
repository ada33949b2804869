"""Constant: a tensor of fixed values without a batch dimension (broadcast to every sample)."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError
from .base import Cost, Op, TensorSpec, register_op


@register_op
class Constant(Op):
    type = "constant"
    short = "const"
    min_inputs = max_inputs = 0
    weight_names = ("values",)

    def check(self, params, weights):
        v = np.asarray(weights.get("values"))
        if v.dtype.kind in "iu":
            v = v.astype(np.int32)
        elif v.dtype.kind in "fb":
            v = v.astype(np.float32)
        else:
            raise NetworkDefinitionError(f"constant values must be numeric, got dtype {v.dtype}")
        if v.ndim == 0:
            v = v.reshape(1)
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise NetworkDefinitionError("constant values contain NaN or infinity")
        weights["values"] = v
        return params

    def infer(self, params, inputs, weights):
        v = weights["values"]
        return [TensorSpec(tuple(v.shape), str(v.dtype), constant=True)]

    def compute(self, env, ins, outs, params, weights):
        outs[0][...] = weights["values"]

    def cost(self, params, inputs, outputs, weights):
        return Cost(0.0, 0.0)
