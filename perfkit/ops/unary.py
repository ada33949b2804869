"""Unary: one element-wise function of one tensor (exp, log, sqrt, reciprocal, abs, neg, ...)."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError
from .activation import chunked, erf_inplace
from .base import Cost, Op, register_op, TensorSpec
from .env import scratch_size

# name -> array-module function name (None: special-cased below)
UNARY = {"exp": "exp", "log": "log", "sqrt": "sqrt", "recip": "reciprocal", "abs": "abs",
         "neg": "negative", "sin": "sin", "cos": "cos", "tan": "tan", "sinh": "sinh", "cosh": "cosh",
         "asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh", "acosh": "arccosh",
         "atanh": "arctanh", "ceil": "ceil", "floor": "floor", "round": "rint", "sign": "sign",
         "erf": None}


@register_op
class Unary(Op):
    type = "unary"
    short = "unary"

    def check(self, params, weights):
        if params.get("op") not in UNARY:
            raise NetworkDefinitionError(f"unknown unary op {params.get('op')!r}; available: {', '.join(UNARY)}")
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        return [TensorSpec(x.shape, x.dtype)]

    def scratch_bytes(self, params, inputs, outputs, batch):
        if params["op"] != "erf":
            return 0
        count = batch * inputs[0].size
        return scratch_size(*([4 * count] * (2 if outputs[0].dtype == "float32" else 3)))

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        name = UNARY[params["op"]]
        if name is not None:
            # one operation: NumPy's float16/bfloat16 loops compute each value in float32 and round once
            getattr(xp, name)(x, out=out)
            return
        y = out if out.dtype == np.float32 else env.scratch(out.shape, np.float32)
        temps = [env.scratch(y.shape, np.float32), env.scratch(y.shape, np.float32)]
        chunked(xp, x, out, y, temps, lambda v, t: erf_inplace(xp, v, *t))      # block by block on the CPU

    def cost(self, params, inputs, outputs, weights):
        cheap = params["op"] in ("abs", "neg", "ceil", "floor", "round", "sign")
        return Cost(flops=float(outputs[0].size * (1 if cheap else 8)),
                    bytes=float(inputs[0].nbytes + outputs[0].nbytes))
