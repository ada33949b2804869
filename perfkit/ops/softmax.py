"""SoftMax over one per-sample axis (default 0, the channel axis), computed in float32; with ``log``
the log-softmax ``x - max - log(sum(exp(x - max)))`` (ONNX LogSoftmax), stable for any range."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError
from .base import Cost, Op, norm_axis, register_op, TensorSpec
from .env import scratch_size
from .reductions import reduce_into


@register_op
class SoftMax(Op):
    type = "softmax"
    short = "softmax"

    def check(self, params, weights):
        params["axis"] = params.get("axis", 0)
        log = params.get("log", False)
        if not isinstance(log, bool):
            raise NetworkDefinitionError(f"softmax log must be True (log-softmax) or False, not {log!r}")
        params["log"] = log
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        params["axis"] = norm_axis(params["axis"], len(x.shape), "softmax axis")
        return [TensorSpec(x.shape, x.dtype)]

    def scratch_bytes(self, params, inputs, outputs, batch):
        x = inputs[0]
        per_row = 4 * batch * x.size // x.shape[params["axis"]]          # one max and one sum per row
        exps = 4 * batch * x.size if params.get("log") else 0              # log-softmax keeps x - max
        return scratch_size(0 if outputs[0].dtype == "float32" else 4 * batch * x.size, per_row, exps)

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        axis = params["axis"] + 1
        if env.device_kind == "cuda" and axis == x.ndim - 1:
            from .cuda_kernels import softmax, softmax_fits
            if softmax_fits(x, out):
                softmax(x, out, bool(params.get("log")))       # one kernel
                return
        y = out if out.dtype == np.float32 else env.scratch(out.shape, np.float32)
        xp.copyto(y, x, casting="unsafe")
        m = env.scratch(tuple(1 if i == axis else d for i, d in enumerate(y.shape)), np.float32)
        reduce_into(xp, "max", y, axis, m)
        y -= m
        if params.get("log"):
            e = env.scratch(y.shape, np.float32)
            xp.exp(y, out=e)
            reduce_into(xp, "sum", e, axis, m)
            xp.log(m, out=m)
            y -= m
        else:
            xp.exp(y, out=y)
            reduce_into(xp, "sum", y, axis, m)
            y /= m
        if y is not out:
            xp.copyto(out, y, casting="unsafe")

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=float(outputs[0].size * (6 if params.get("log") else 5)), bytes=float(inputs[0].nbytes + outputs[0].nbytes))
