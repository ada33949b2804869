"""Activation: element-wise non-linearities with TensorRT's ``alpha``/``beta`` parameters."""
from __future__ import annotations

import math

import numpy as np

from ..errors import NetworkDefinitionError
from .base import Cost, Op, register_op, TensorSpec
from .env import scratch_size

# name -> (default alpha, default beta, flops per element)
ACTIVATIONS = {
    "relu": (0.0, 0.0, 1), "sigmoid": (0.0, 0.0, 4), "tanh": (0.0, 0.0, 4),
    "leaky_relu": (0.01, 0.0, 2), "elu": (1.0, 0.0, 4), "selu": (1.6732632423543772, 1.0507009873554805, 5),
    "gelu": (0.0, 0.0, 12), "gelu_tanh": (0.0, 0.0, 9), "clip": (0.0, 6.0, 2), "softplus": (1.0, 1.0, 5),
    "softsign": (0.0, 0.0, 3), "hard_sigmoid": (0.2, 0.5, 3), "scaled_tanh": (1.0, 1.0, 5),
    # ONNX HardSwish (x * hard_sigmoid(x), alpha 1/6, beta 1/2), ThresholdedRelu, Celu and Mish
    "hard_swish": (1.0 / 6.0, 0.5, 4), "thresholded_relu": (1.0, 0.0, 2), "celu": (1.0, 0.0, 5),
    "mish": (0.0, 0.0, 9),
}


# float32 scratch arrays (each the size of the input) an activation needs besides its values
TEMPS = {"leaky_relu": 1, "elu": 1, "selu": 1, "gelu": 2, "gelu_tanh": 1, "softsign": 1, "hard_swish": 1,
         "thresholded_relu": 1, "celu": 1, "mish": 1}

_ERF = (0.3275911, 1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def _erf_abs(xp, y, t, r) -> None:
    """r = erf(|y|) for float32 ``y`` (Abramowitz & Stegun 7.1.26, absolute error < 1.5e-7), using
    ``t`` as scratch; ``y`` is unchanged."""
    p, c5, c4, c3, c2, c1 = _ERF
    xp.abs(y, out=t)
    t *= p
    t += 1.0
    xp.reciprocal(t, out=t)
    xp.multiply(t, c5, out=r)           # Horner: ((((c5 t + c4) t + c3) t + c2) t + c1) t
    for c in (c4, c3, c2, c1):
        r += c
        r *= t
    xp.multiply(y, y, out=t)
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    r *= t
    xp.subtract(1.0, r, out=r)


def erf_inplace(xp, y, t, r) -> None:
    """y = erf(y) in place (float32), with two scratch arrays of y's shape."""
    _erf_abs(xp, y, t, r)
    xp.sign(y, out=y)
    y *= r


def activate_inplace(xp, kind: str, y, alpha: float, beta: float, temps: list) -> None:
    """y = activation(y) in place for a float32 array ``y``; ``temps``: ``TEMPS.get(kind, 0)``
    float32 arrays of y's shape."""
    if kind == "relu":
        xp.maximum(y, 0, out=y)
    elif kind == "sigmoid":
        xp.negative(y, out=y)
        xp.exp(y, out=y)
        y += 1.0
        xp.reciprocal(y, out=y)
    elif kind == "tanh":
        xp.tanh(y, out=y)
    elif kind == "leaky_relu":            # max(x, 0) + alpha * min(x, 0)
        t = temps[0]
        xp.minimum(y, 0, out=t)
        t *= alpha
        xp.maximum(y, 0, out=y)
        y += t
    elif kind in ("elu", "selu"):         # max(x, 0) + alpha * (exp(min(x, 0)) - 1)
        t = temps[0]
        xp.minimum(y, 0, out=t)
        xp.exp(t, out=t)
        t -= 1.0
        t *= alpha
        xp.maximum(y, 0, out=y)
        y += t
        if kind == "selu":
            y *= beta
    elif kind == "gelu":                  # x/2 (1 + erf(x/sqrt2)) = (x + |x| erf(|x|/sqrt2)) / 2
        t, r = temps
        y *= 1.0 / math.sqrt(2.0)
        _erf_abs(xp, y, t, r)
        y *= math.sqrt(2.0)
        xp.abs(y, out=t)
        t *= r
        y += t
        y *= 0.5
    elif kind == "gelu_tanh":             # x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        t = temps[0]
        xp.multiply(y, y, out=t)
        t *= y
        t *= 0.044715
        t += y
        t *= math.sqrt(2.0 / math.pi)
        xp.tanh(t, out=t)
        t += 1.0
        y *= t
        y *= 0.5
    elif kind == "clip":
        xp.clip(y, alpha, beta, out=y)
    elif kind == "softplus":
        y *= beta
        xp.logaddexp(0, y, out=y)
        y *= alpha
    elif kind == "softsign":
        t = temps[0]
        xp.abs(y, out=t)
        t += 1.0
        y /= t
    elif kind == "hard_sigmoid":
        y *= alpha
        y += beta
        xp.clip(y, 0, 1, out=y)
    elif kind == "scaled_tanh":
        y *= beta
        xp.tanh(y, out=y)
        y *= alpha
    elif kind == "hard_swish":            # x * clip(alpha x + beta, 0, 1)
        t = temps[0]
        xp.multiply(y, alpha, out=t)
        t += beta
        xp.clip(t, 0, 1, out=t)
        y *= t
    elif kind == "thresholded_relu":      # x where x > alpha, else 0
        t = temps[0]
        xp.greater(y, alpha, out=t)
        y *= t
    elif kind == "celu":                  # max(x, 0) + alpha (exp(min(x, 0) / alpha) - 1)
        t = temps[0]
        xp.minimum(y, 0, out=t)
        t *= 1.0 / alpha
        xp.exp(t, out=t)
        t -= 1.0
        t *= alpha
        xp.maximum(y, 0, out=y)
        y += t
    elif kind == "mish":                  # x tanh(softplus(x))
        t = temps[0]
        xp.logaddexp(0, y, out=t)
        xp.tanh(t, out=t)
        y *= t
    else:
        raise NetworkDefinitionError(f"unknown activation {kind!r}")


def activation_scratch(kind: str, count: int, dtype) -> list:
    """Bytes of the scratch arrays :func:`activate` carves for ``count`` values stored in ``dtype``."""
    own = [] if np.dtype(dtype) == np.float32 else [4 * count]
    return own + [4 * count] * TEMPS.get(kind, 0)


#: values per block when a multi-pass function runs block by block on the CPU: a block and its float32
#: temporaries (128 KiB each) stay in the core's cache across the function's ~20 passes
CHUNK = 1 << 15


def chunked(xp, x, out, y, temps, fn) -> None:
    """``out = fn(y, temps)`` where ``y`` (float32, ``out`` itself or scratch) first receives ``x``:
    on the CPU, for arrays larger than :data:`CHUNK`, block by block along the flattened arrays, so the
    copy in, every pass of ``fn`` and the copy out read a block while it is in cache (2 GELU passes over a
    1M-value array: 6.6 -> 4.0 ms); elsewhere, or for strided arrays, whole."""
    arrays = [x, out, y, *temps]
    if xp is not np or y.size <= CHUNK or not all(a.flags.c_contiguous for a in arrays):
        if y is not x:
            xp.copyto(y, x, casting="unsafe")
        fn(y, temps)
        if y is not out:
            xp.copyto(out, y, casting="unsafe")
        return
    flat = [a.reshape(-1) for a in arrays]
    for i in range(0, y.size, CHUNK):
        xc, oc, yc, *tc = (a[i:i + CHUNK] for a in flat)
        if y is not x:
            np.copyto(yc, xc, casting="unsafe")
        fn(yc, tc)
        if y is not out:
            np.copyto(oc, yc, casting="unsafe")


def activate(env, kind: str, x, out, alpha: float, beta: float) -> None:
    """out = activation(x), computed in float32: in ``out`` itself when it is float32 (``x`` may be
    ``out``), else in workspace scratch (see :func:`activation_scratch`); block by block on the CPU."""
    xp = env.xp
    mark = env.mark()
    y = out if out.dtype == np.float32 else env.scratch(out.shape, np.float32)
    temps = [env.scratch(y.shape, np.float32) for _ in range(TEMPS.get(kind, 0))]
    chunked(xp, x, out, y, temps, lambda v, t: activate_inplace(xp, kind, v, alpha, beta, t))
    env.release(mark)


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
        if kind == "celu" and params["alpha"] <= 0:
            raise NetworkDefinitionError(f"celu needs alpha > 0 (it divides by alpha), got {params['alpha']}")
        if kind == "clip" and params["alpha"] > params["beta"]:
            raise NetworkDefinitionError(f"clip needs alpha (min) <= beta (max), got {params['alpha']} > {params['beta']}")
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        return [TensorSpec(x.shape, x.dtype)]

    def scratch_bytes(self, params, inputs, outputs, batch):
        x = inputs[0]
        count = batch * x.size
        pre = [4 * x.size] * 3 if params.get("pre_mode") and x.dtype != "float32" else []   # float32 pre-scale weights
        return scratch_size(*pre, *activation_scratch(params["activation"], count, x.dtype))

    def compute(self, env, ins, outs, params, weights):
        xp = env.xp
        x, out = ins[0], outs[0]
        kind = params["activation"]
        if not weights:
            if kind == "relu" and x.dtype == out.dtype:
                xp.maximum(x, 0, out=out)
            else:
                activate(env, kind, x, out, params["alpha"], params["beta"])
            return
        # a fused Scale + Activation: (x * scale + shift) ** power, then the activation, in float32
        from .scale import Scale
        p = {"mode": params.get("pre_mode", "uniform"), "channel_axis": params.get("pre_channel_axis", 0)}
        rank = x.ndim - 1
        mark = env.mark()
        w = {k: Scale.broadcastable(p, env.float32(weights[k]), rank) for k in self.weight_names if k in weights}
        y = out if out.dtype == np.float32 else env.scratch(out.shape, np.float32)
        xp.copyto(y, x, casting="unsafe")
        if "pre_scale" in w:
            y *= w["pre_scale"]
        if "pre_shift" in w:
            y += w["pre_shift"]
        if "pre_power" in w:
            xp.power(y, w["pre_power"], out=y)
        activate(env, kind, y, y, params["alpha"], params["beta"])
        if y is not out:
            xp.copyto(out, y, casting="unsafe")
        env.release(mark)

    def cost(self, params, inputs, outputs, weights):
        n = outputs[0].size
        return Cost(flops=float(n * (ACTIVATIONS[params["activation"]][2] + len(weights))),
                    bytes=float(inputs[0].nbytes + outputs[0].nbytes))
