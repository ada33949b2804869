"""Reduce: sum, prod, max, min or average over per-sample axes, with or without keep-dims.

The builder's reduction fusions add five operations no network defines directly: ``l1_norm``
(sum of |x|), ``sum_squares``, ``l2_norm`` (sqrt of the sum of squares), ``log_sum`` and
``log_sum_exp`` (computed stably). A fused Shuffle + Reduce keeps the shuffle's permutation as
``first_transpose``, a free view of the input.
"""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError
from .base import Cost, Op, norm_axis, register_op, TensorSpec

REDUCTIONS = {"sum": "sum", "prod": "prod", "max": "max", "min": "min", "avg": "mean"}
FUSED = ("l1_norm", "sum_squares", "l2_norm", "log_sum", "log_sum_exp")


@register_op
class Reduce(Op):
    type = "reduce"
    short = "reduce"

    def check(self, params, weights):
        if params.get("op") not in REDUCTIONS and params.get("op") not in FUSED:
            raise NetworkDefinitionError(f"unknown reduce op {params.get('op')!r}; available: {', '.join(REDUCTIONS)}")
        params.setdefault("first_transpose", None)
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
        if params.get("first_transpose"):
            x = TensorSpec(tuple(x.shape[p] for p in params["first_transpose"]), x.dtype)
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
        xp = env.xp
        x, out = ins[0], outs[0]
        if params.get("first_transpose"):
            x = x.transpose([0] + [p + 1 for p in params["first_transpose"]])
        axes = tuple(a + 1 for a in params["axes"])
        keep = params["keep_dims"]
        op = params["op"]
        if op in FUSED:
            y = x.astype(np.float32)
            if op == "l1_norm":
                r = xp.abs(y).sum(axis=axes, keepdims=keep)
            elif op in ("sum_squares", "l2_norm"):
                r = (y * y).sum(axis=axes, keepdims=keep)
                r = xp.sqrt(r) if op == "l2_norm" else r
            elif op == "log_sum":
                r = xp.log(y.sum(axis=axes, keepdims=keep))
            else:
                m = y.max(axis=axes, keepdims=True)
                r = xp.log(xp.exp(y - m).sum(axis=axes, keepdims=True)) + m
                if not keep:
                    r = r.reshape(out.shape)
            out[...] = r.reshape(out.shape)
            return
        fn = getattr(xp, REDUCTIONS[op])
        if op in ("sum", "avg", "prod") and x.dtype.kind == "f":
            r = fn(x, axis=axes, keepdims=params["keep_dims"], dtype=np.float32)
        else:
            r = fn(x, axis=axes, keepdims=params["keep_dims"])
        out[...] = r.reshape(out.shape)

    def cost(self, params, inputs, outputs, weights):
        per = {"l1_norm": 2, "sum_squares": 2, "l2_norm": 2, "log_sum": 1, "log_sum_exp": 4}.get(params["op"], 1)
        return Cost(flops=float(inputs[0].size * per), bytes=float(inputs[0].nbytes + outputs[0].nbytes))
