"""Scale: ``(x * scale + shift) ** power`` with one value, one per channel, or one per element."""
from __future__ import annotations

import math

import numpy as np

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, as_array, norm_axis, register_op, TensorSpec
from .env import scratch_size

MODES = ("uniform", "channel", "elementwise")


@register_op
class Scale(Op):
    type = "scale"
    short = "scale"
    weight_names = ("shift", "scale", "power")

    def check(self, params, weights):
        mode = params.get("mode", "uniform")
        if mode not in MODES:
            raise NetworkDefinitionError(f"scale mode must be one of {MODES}, not {mode!r}")
        params["mode"] = mode
        params["channel_axis"] = int(params.get("channel_axis", 0))
        for n in self.weight_names:
            if weights.get(n) is None:
                weights.pop(n, None)
            else:
                weights[n] = as_array(weights[n], n)
        if not any(n in weights for n in self.weight_names):
            raise NetworkDefinitionError("a scale layer needs at least one of shift, scale, power")
        return params

    def _expected(self, params, shape):
        mode = params["mode"]
        if mode == "uniform":
            return (1,)
        if mode == "channel":
            return (shape[norm_axis(params["channel_axis"], len(shape), "channel_axis")],)
        return tuple(shape)

    def infer(self, params, inputs, weights):
        x = inputs[0]
        want = self._expected(params, x.shape)
        for n, w in weights.items():
            if w.size == 1 and want == (1,):
                weights[n] = w.reshape(1)
            elif w.shape != want:
                raise ShapeError(f"{params['mode']} scale on input {x.shape} needs {n} of shape {want}, got {w.shape}")
        return [TensorSpec(x.shape, x.dtype)]

    @staticmethod
    def broadcastable(params, w, rank):
        if params["mode"] != "channel":
            return w
        axis = params["channel_axis"] % rank
        return w.reshape((-1,) + (1,) * (rank - 1 - axis))

    def scratch_bytes(self, params, inputs, outputs, batch):
        x, o = inputs[0], outputs[0]
        if x.dtype == "float32":
            return 0
        # with a power, in float32: the values and float32 copies of the (at most three) weights;
        # whether the layer has a power is not known here, so this is declared for every such Scale
        per_weight = 4 * math.prod(self._expected(params, x.shape))
        return scratch_size(0 if o.dtype == "float32" else 4 * batch * o.size, *[per_weight] * 3)

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        rank = x.ndim - 1
        scale, shift, power = (weights.get(n) for n in ("scale", "shift", "power"))
        if power is None and out.dtype == x.dtype:
            if scale is not None:
                xp.multiply(x, self.broadcastable(params, scale, rank), out=out)
                src = out
            else:
                src = x
            if shift is not None:
                xp.add(src, self.broadcastable(params, shift, rank), out=out)
            elif src is x:
                out[...] = x
            return
        # with a power: (x * scale + shift) ** power in float32
        y = out if out.dtype == np.float32 else env.scratch(out.shape, np.float32)
        xp.copyto(y, x, casting="unsafe")
        if scale is not None:
            y *= self.broadcastable(params, env.float32(scale), rank)
        if shift is not None:
            y += self.broadcastable(params, env.float32(shift), rank)
        if power is not None:
            xp.power(y, self.broadcastable(params, env.float32(power), rank), out=y)
        if y is not out:
            xp.copyto(out, y, casting="unsafe")

    def cost(self, params, inputs, outputs, weights):
        n = outputs[0].size
        return Cost(flops=float(n * (len(weights) + (9 if "power" in weights else 0))),
                    bytes=float(inputs[0].nbytes + outputs[0].nbytes
                                + sum(w.size for w in weights.values()) * outputs[0].itemsize))
