"""LRN: local response normalisation across channels, ``x / (k + alpha/n * sum(x^2))^beta``."""
from __future__ import annotations

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, TensorSpec, register_op
from .env import scratch_size


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

    def scratch_bytes(self, params, inputs, outputs, batch):
        x = inputs[0]
        rest = x.size // x.shape[0]
        padded = 4 * batch * (x.shape[0] + 2 * (params["window"] // 2) + 1) * rest   # squares, then their prefix sums
        return scratch_size(padded, padded, 0 if x.dtype == "float32" else 4 * batch * x.size)

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        x32 = env.float32(x)
        n, h = params["window"], params["window"] // 2
        c = x.shape[1]
        shape = (x.shape[0], c + 2 * h + 1) + x.shape[2:]
        squares, cs = env.scratch(shape, np.float32), env.scratch(shape, np.float32)
        squares.fill(0)
        xp.multiply(x32, x32, out=squares[:, h + 1:h + 1 + c])
        xp.cumsum(squares, axis=1, out=cs)
        den = squares[:, :c]                          # the window sums, then the denominator
        xp.subtract(cs[:, n:n + c], cs[:, :c], out=den)
        den *= params["alpha"] / n
        den += params["k"]
        xp.power(den, params["beta"], out=den)
        if out.dtype == np.float32:
            xp.divide(x32, den, out=out)
        else:
            xp.divide(x32, den, out=den)
            xp.copyto(out, den, casting="unsafe")

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=float(outputs[0].size * (4 + 10)), bytes=float(inputs[0].nbytes + outputs[0].nbytes))
