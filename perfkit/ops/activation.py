"""Activation: element-wise non-linearities with TensorRT's ``alpha``/``beta`` parameters."""
from __future__ import annotations

import math

from ..errors import NetworkDefinitionError
from .base import Cost, Op, register_op, TensorSpec

# name -> (default alpha, default beta, flops per element)
ACTIVATIONS = {
    "relu": (0.0, 0.0, 1), "sigmoid": (0.0, 0.0, 4), "tanh": (0.0, 0.0, 4),
    "leaky_relu": (0.01, 0.0, 2), "elu": (1.0, 0.0, 4), "selu": (1.6732632423543772, 1.0507009873554805, 5),
    "gelu": (0.0, 0.0, 12), "gelu_tanh": (0.0, 0.0, 9), "clip": (0.0, 6.0, 2), "softplus": (1.0, 1.0, 5),
    "softsign": (0.0, 0.0, 3), "hard_sigmoid": (0.2, 0.5, 3), "scaled_tanh": (1.0, 1.0, 5),
}


def erf(xp, x):
    """Error function (Abramowitz & Stegun 7.1.26, absolute error < 1.5e-7), on NumPy or CuPy."""
    x = x.astype("float32", copy=False)
    s = xp.sign(x)
    a = xp.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * xp.exp(-a * a)
    return s * y


def apply_activation(xp, kind: str, x, alpha: float, beta: float):
    """Returns activation(x) as a new float32 array (used by the op and by fused layers)."""
    x = x.astype("float32", copy=False)
    if kind == "relu":
        return xp.maximum(x, 0)
    if kind == "sigmoid":
        return 1.0 / (1.0 + xp.exp(-x))
    if kind == "tanh":
        return xp.tanh(x)
    if kind == "leaky_relu":
        return xp.where(x >= 0, x, x * alpha)
    if kind == "elu":
        return xp.where(x >= 0, x, alpha * (xp.exp(xp.minimum(x, 0)) - 1))
    if kind == "selu":
        return beta * xp.where(x >= 0, x, alpha * (xp.exp(xp.minimum(x, 0)) - 1))
    if kind == "gelu":
        return 0.5 * x * (1.0 + erf(xp, x / math.sqrt(2.0)))
    if kind == "gelu_tanh":
        return 0.5 * x * (1.0 + xp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    if kind == "clip":
        return xp.clip(x, alpha, beta)
    if kind == "softplus":
        return alpha * xp.logaddexp(0, beta * x)
    if kind == "softsign":
        return x / (1.0 + xp.abs(x))
    if kind == "hard_sigmoid":
        return xp.clip(alpha * x + beta, 0, 1)
    if kind == "scaled_tanh":
        return alpha * xp.tanh(beta * x)
    raise NetworkDefinitionError(f"unknown activation {kind!r}")


@register_op
class Activation(Op):
    """An activation; a fused Scale + Activation keeps the scale as ``pre_*`` weights applied first."""

    type = "activation"
    short = "act"
    weight_names = ("pre_scale", "pre_shift", "pre_power")

    def check(self, params, weights):
        kind = params.get("activation")
        if kind not in ACTIVATIONS:
            raise NetworkDefinitionError(f"unknown activation {kind!r}; available: {', '.join(ACTIVATIONS)}")
        da, db, _ = ACTIVATIONS[kind]
        params["alpha"] = float(da if params.get("alpha") is None else params["alpha"])
        params["beta"] = float(db if params.get("beta") is None else params["beta"])
        if kind == "clip" and params["alpha"] > params["beta"]:
            raise NetworkDefinitionError(f"clip needs alpha (min) <= beta (max), got {params['alpha']} > {params['beta']}")
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        return [TensorSpec(x.shape, x.dtype)]

    def compute(self, env, ins, outs, params, weights):
        x, out = ins[0], outs[0]
        kind = params["activation"]
        if weights:
            x = self._pre_scale(env.xp, x, params, weights)
        if kind == "relu":
            env.xp.maximum(x, 0, out=out)
            return
        out[...] = apply_activation(env.xp, kind, x, params["alpha"], params["beta"])

    @staticmethod
    def _pre_scale(xp, x, params, weights):
        from .scale import Scale
        p = {"mode": params.get("pre_mode", "uniform"), "channel_axis": params.get("pre_channel_axis", 0)}
        rank = x.ndim - 1
        y = x.astype("float32")
        if "pre_scale" in weights:
            y = y * Scale.broadcastable(p, weights["pre_scale"], rank)
        if "pre_shift" in weights:
            y = y + Scale.broadcastable(p, weights["pre_shift"], rank)
        if "pre_power" in weights:
            y = xp.power(y, Scale.broadcastable(p, weights["pre_power"], rank))
        return y

    def cost(self, params, inputs, outputs, weights):
        n = outputs[0].size
        return Cost(flops=float(n * (ACTIVATIONS[params["activation"]][2] + len(weights))),
                    bytes=float(inputs[0].nbytes + outputs[0].nbytes))
