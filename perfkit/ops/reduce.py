"""Reduce: sum, prod, max, min or average over per-sample axes, with or without keep-dims."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError
from .base import Cost, Op, norm_axis, register_op, TensorSpec

REDUCTIONS = {"sum": "sum", "prod": "prod", "max": "max", "min": "min", "avg": "mean"}


@register_op
class Reduce(Op):
    type = "reduce"
    short = "reduce"

    def check(self, params, weights):
        if params.get("op") not in REDUCTIONS:
            raise NetworkDefinitionError(f"unknown reduce op {params.get('op')!r}; available: {', '.join(REDUCTIONS)}")
        axes = params.get("axes")
        if isinstance(axes, int):
            axes = (axes,)
        if not axes:
            raise NetworkDefinitionError("reduce needs at least one axis (per-sample; the batch is never reduced)")
        params["axes"] = list(axes)
        params["keep_dims"] = bool(params.get("keep_dims", False))
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        axes = sorted({norm_axis(a, len(x.shape), "reduce axis") for a in params["axes"]})
        if len(axes) != len(params["axes"]):
            raise NetworkDefinitionError(f"reduce axes {params['axes']} name the same axis twice")
        params["axes"] = axes
        if params["keep_dims"]:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return [TensorSpec(shape, x.dtype)]

    def compute(self, env, ins, outs, params, weights):
        x, out = ins[0], outs[0]
        axes = tuple(a + 1 for a in params["axes"])
        fn = getattr(env.xp, REDUCTIONS[params["op"]])
        if params["op"] in ("sum", "avg", "prod") and x.dtype.kind == "f":
            r = fn(x, axis=axes, keepdims=params["keep_dims"], dtype=np.float32)
        else:
            r = fn(x, axis=axes, keepdims=params["keep_dims"])
        out[...] = r.reshape(out.shape)

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=float(inputs[0].size), bytes=float(inputs[0].nbytes + outputs[0].nbytes))
