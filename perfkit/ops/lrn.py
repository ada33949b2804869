"""LRN: local response normalisation across channels, ``x / (k + alpha/n * sum(x^2))^beta``."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, TensorSpec, register_op


@register_op
class LRN(Op):
    type = "lrn"
    short = "lrn"

    def check(self, params, weights):
        n = params.get("window")
        if not isinstance(n, int) or n <= 0 or n % 2 == 0:
            raise NetworkDefinitionError(f"LRN window must be a positive odd int, not {n!r}")
        for k, d in (("alpha", 1e-4), ("beta", 0.75), ("k", 1.0)):
            params[k] = float(params.get(k, d))
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        if len(x.shape) < 1:
            raise ShapeError("LRN needs a per-sample input with a channel axis")
        return [TensorSpec(x.shape, x.dtype)]

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x = ins[0].astype(np.float32)
        n, h = params["window"], params["window"] // 2
        c = x.shape[1]
        padded = xp.zeros((x.shape[0], c + 2 * h + 1) + x.shape[2:], np.float32)
        padded[:, h + 1:h + 1 + c] = x * x
        cs = xp.cumsum(padded, axis=1)
        window_sum = cs[:, n:n + c] - cs[:, :c]
        outs[0][...] = x / (params["k"] + params["alpha"] / n * window_sum) ** params["beta"]

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=float(outputs[0].size * (4 + 10)), bytes=float(inputs[0].nbytes + outputs[0].nbytes))
