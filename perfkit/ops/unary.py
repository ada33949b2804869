"""Unary: one element-wise function of one tensor (exp, log, sqrt, reciprocal, abs, neg, ...)."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError
from .activation import erf
from .base import Cost, Op, register_op, TensorSpec

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

    def compute(self, env, ins, outs, params, weights):
        x, out = ins[0], outs[0]
        name = UNARY[params["op"]]
        if name is None:
            out[...] = erf(env.xp, x)
        elif x.dtype == np.float16 and params["op"] in ("exp", "log", "sqrt", "recip", "sinh", "cosh"):
            out[...] = getattr(env.xp, name)(x.astype(np.float32))
        else:
            getattr(env.xp, name)(x, out=out)

    def cost(self, params, inputs, outputs, weights):
        cheap = params["op"] in ("abs", "neg", "ceil", "floor", "round", "sign")
        return Cost(flops=float(outputs[0].size * (1 if cheap else 8)),
                    bytes=float(inputs[0].nbytes + outputs[0].nbytes))
