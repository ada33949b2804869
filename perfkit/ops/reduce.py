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
from .env import scratch_size
from .reductions import reduce_into

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

    def scratch_bytes(self, params, inputs, outputs, batch):
        x, o = inputs[0], outputs[0]
        out32 = 0 if o.dtype == "float32" else 4 * batch * o.size
        if params["op"] in FUSED:          # the input in float32, the result, and for log_sum_exp the max
            kept = 4 * batch * o.size if params["op"] == "log_sum_exp" else 0
            return scratch_size(4 * batch * x.size, 4 * batch * o.size, kept)
        if "float" not in x.dtype:         # integer averages: float64 means
            return scratch_size(8 * batch * o.size) if params["op"] == "avg" else 0
        return scratch_size(out32) if params["op"] in ("sum", "avg", "prod") else 0

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        if params.get("first_transpose"):
            x = x.transpose([0] + [p + 1 for p in params["first_transpose"]])
        axes = tuple(a + 1 for a in params["axes"])
        keep = params["keep_dims"]
        kept = tuple(1 if i in axes else d for i, d in enumerate(x.shape))     # the result with keep_dims
        op = params["op"]
        if op in FUSED:
            y = env.scratch(x.shape, np.float32)
            xp.copyto(y, x, casting="unsafe")
            r = env.scratch(kept, np.float32)
            if op == "l1_norm":
                xp.abs(y, out=y)
                reduce_into(xp, "sum", y, axes, r)
            elif op in ("sum_squares", "l2_norm"):
                xp.multiply(y, y, out=y)
                reduce_into(xp, "sum", y, axes, r)
                if op == "l2_norm":
                    xp.sqrt(r, out=r)
            elif op == "log_sum":
                reduce_into(xp, "sum", y, axes, r)
                xp.log(r, out=r)
            else:                            # log(sum(exp(x - max))) + max
                m = env.scratch(kept, np.float32)
                reduce_into(xp, "max", y, axes, m)
                y -= m
                xp.exp(y, out=y)
                reduce_into(xp, "sum", y, axes, r)
                xp.log(r, out=r)
                r += m
            xp.copyto(out, r.reshape(out.shape), casting="unsafe")
            return
        fn = getattr(xp, REDUCTIONS[op])
        dest = out.reshape(kept)
        if op in ("max", "min"):
            reduce_into(xp, op, x, axes, dest)
        elif x.dtype.kind in "iu":
            if op == "avg":
                r = env.scratch(kept, np.float64)
                fn(x, axis=axes, keepdims=True, dtype=np.float64, out=r)
                xp.copyto(dest, r, casting="unsafe")
            else:
                fn(x, axis=axes, keepdims=True, dtype=out.dtype, out=dest)
        else:                                 # float sums, means and products accumulate in float32
            r = dest if out.dtype == np.float32 else env.scratch(kept, np.float32)
            reduce_into(xp, "prod" if op == "prod" else "sum", x, axes, r)
            if op == "avg":
                r /= np.float32(x.size // r.size if r.size else 1)
            if r is not dest:
                xp.copyto(dest, r, casting="unsafe")

    def cost(self, params, inputs, outputs, weights):
        per = {"l1_norm": 2, "sum_squares": 2, "l2_norm": 2, "log_sum": 1, "log_sum_exp": 4}.get(params["op"], 1)
        return Cost(flops=float(inputs[0].size * per), bytes=float(inputs[0].nbytes + outputs[0].nbytes))
