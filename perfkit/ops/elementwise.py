"""ElementWise: a binary operation of two tensors of equal per-sample rank, with broadcasting."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError
from .base import Cost, Op, broadcast_shapes, register_op, TensorSpec

OPS = {"sum": "add", "prod": "multiply", "sub": "subtract", "div": "divide", "max": "maximum",
       "min": "minimum", "pow": "power"}


@register_op
class ElementWise(Op):
    type = "elementwise"
    short = "ew"
    min_inputs = max_inputs = 2

    def check(self, params, weights):
        if params.get("op") not in OPS:
            raise NetworkDefinitionError(f"unknown element-wise op {params.get('op')!r}; available: {', '.join(OPS)}")
        return params

    def infer(self, params, inputs, weights):
        a, b = inputs
        shape = broadcast_shapes(a.shape, b.shape, f"element-wise {params['op']}")
        dtype = a.dtype if not a.constant else b.dtype
        if "float" not in a.dtype or "float" not in b.dtype:
            dtype = "int32" if a.dtype == b.dtype == "int32" else "float32"
        return [TensorSpec(shape, dtype)]

    def compute(self, env, ins, outs, params, weights):
        a, b = ins
        fn = getattr(env.xp, OPS[params["op"]])
        out = outs[0]
        if params["op"] == "pow" or a.dtype != out.dtype or b.dtype != out.dtype:
            out[...] = fn(a.astype(np.float32), b.astype(np.float32))
        else:
            fn(a, b, out=out)

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=float(outputs[0].size * (10 if params["op"] == "pow" else 1)),
                    bytes=float(sum(t.nbytes for t in inputs) + outputs[0].nbytes))
