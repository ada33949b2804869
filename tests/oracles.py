"""Independent NumPy oracles (float64, written as plainly as possible) for every layer type, and a
reference interpreter of a whole unfused Network built from them. Nothing here imports perfkit's ops."""
from __future__ import annotations

import math

import numpy as np


def conv2d(x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Direct convolution over (N, C, H, W): a loop over groups and kernel taps, each tap a
    strided slice of the padded input weighted by that tap's (K, C) matrix."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    out = np.zeros((n, k, oh, ow))
    kg = k // groups
    for g in range(groups):
        for a in range(kh):
            for b in range(kw):
                tap = xp[:, g * cg:(g + 1) * cg, a * dh:a * dh + sh * (oh - 1) + 1:sh,
                         b * dw:b * dw + sw * (ow - 1) + 1:sw]
                out[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", tap, w[g * kg:(g + 1) * kg, :, a, b])
    if bias is not None:
        out += np.asarray(bias).reshape(1, k, 1, 1)
    return out


def pool2d(x, kind, window, stride, padding, exclude_padding=True):
    n, c, h, w = x.shape
    kh, kw = window
    sh, sw = stride
    ph, pw = padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - ph, j * sw - pw
            rs, cs = max(r0, 0), max(c0, 0)
            re, ce = min(r0 + kh, h), min(c0 + kw, w)
            patch = x[:, :, rs:re, cs:ce]
            if kind == "max":
                out[:, :, i, j] = patch.max(axis=(2, 3))
            else:
                count = patch.shape[2] * patch.shape[3] if exclude_padding else kh * kw
                out[:, :, i, j] = patch.sum(axis=(2, 3)) / count
    return out


def activation(x, kind, alpha, beta):
    f = {
        "relu": lambda v: max(v, 0.0), "sigmoid": lambda v: 1 / (1 + math.exp(-v)), "tanh": math.tanh,
        "leaky_relu": lambda v: v if v >= 0 else alpha * v, "elu": lambda v: v if v >= 0 else alpha * (math.exp(v) - 1),
        "selu": lambda v: beta * (v if v >= 0 else alpha * (math.exp(v) - 1)),
        "gelu": lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))),
        "gelu_tanh": lambda v: 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))),
        "clip": lambda v: min(max(v, alpha), beta), "softplus": lambda v: alpha * math.log1p(math.exp(beta * v)),
        "softsign": lambda v: v / (1 + abs(v)), "hard_sigmoid": lambda v: min(max(alpha * v + beta, 0.0), 1.0),
        "scaled_tanh": lambda v: alpha * math.tanh(beta * v),
    }[kind]
    return np.vectorize(f, otypes=[float])(x)


UNARY = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "recip": lambda v: 1 / v, "abs": np.abs, "neg": lambda v: -v,
         "sin": np.sin, "cos": np.cos, "tan": np.tan, "sinh": np.sinh, "cosh": np.cosh, "asin": np.arcsin,
         "acos": np.arccos, "atan": np.arctan, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
         "ceil": np.ceil, "floor": np.floor, "round": np.round, "sign": np.sign,
         "erf": np.vectorize(math.erf, otypes=[float])}
BINARY = {"sum": np.add, "prod": np.multiply, "sub": np.subtract, "div": np.divide, "max": np.maximum,
          "min": np.minimum, "pow": np.power}


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def lrn(x, n, alpha, beta, k):
    c = x.shape[1]
    out = np.empty_like(x)
    h = n // 2
    for ci in range(c):
        lo, hi = max(0, ci - h), min(c, ci + h + 1)
        s = (x[:, lo:hi] ** 2).sum(axis=1)
        out[:, ci] = x[:, ci] / (k + alpha / n * s) ** beta
    return out


def layer_forward(layer, ins, const_flags):
    """Oracle output(s) of one layer; ``ins`` carry a batch dim unless ``const_flags[i]``."""
    p, w = layer.params, {k: np.asarray(v, np.float64) for k, v in layer.weights.items()}
    t = layer.type
    x = ins[0] if ins else None
    if t == "fully_connected":
        y = x.reshape(x.shape[0], -1) @ w["kernel"].T
        return [y + w["bias"] if "bias" in w else y]
    if t == "matrix_multiply":
        a, b = ins
        a = np.swapaxes(a, -1, -2) if p["transpose_a"] else a
        b = np.swapaxes(b, -1, -2) if p["transpose_b"] else b
        return [np.matmul(a, b)]
    if t == "convolution":
        return [conv2d(x, w["kernel"], w.get("bias"), p["stride"], p["padding"], p["dilation"], p["groups"])]
    if t == "activation":
        return [activation(x, p["activation"], p["alpha"], p["beta"])]
    if t == "scale":
        rank = x.ndim - 1

        def b_(v):
            if p["mode"] == "channel":
                ax = p["channel_axis"] % rank
                return v.reshape((-1,) + (1,) * (rank - 1 - ax))
            return v
        y = x * b_(w["scale"]) if "scale" in w else x
        y = y + b_(w["shift"]) if "shift" in w else y
        return [y ** b_(w["power"]) if "power" in w else y]
    if t == "elementwise":
        return [BINARY[p["op"]](ins[0], ins[1])]
    if t == "unary":
        return [UNARY[p["op"]](x)]
    if t == "reduce":
        fn = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "avg": np.mean}[p["op"]]
        return [fn(x, axis=tuple(a + 1 for a in p["axes"]), keepdims=p["keep_dims"])]
    if t == "pooling":
        return [pool2d(x, p["pool"], p["window"], p["stride"], p["padding"], p["exclude_padding"])]
    if t == "shuffle":
        y = x
        if p["first_transpose"]:
            y = y.transpose([0] + [i + 1 for i in p["first_transpose"]])
        if p["reshape"] is not None:
            dims = [y.shape[1 + i] if d == 0 else d for i, d in enumerate(p["reshape"])]
            y = y.reshape([y.shape[0]] + dims)
        if p["second_transpose"]:
            y = y.transpose([0] + [i + 1 for i in p["second_transpose"]])
        return [y]
    if t == "concatenation":
        n = max(a.shape[0] for a, c in zip(ins, const_flags) if not c)
        parts = [np.broadcast_to(a, (n,) + a.shape) if c else a for a, c in zip(ins, const_flags)]
        return [np.concatenate(parts, axis=p["axis"] + 1)]
    if t == "gather":
        data, idx = ins
        dc, ic = const_flags
        if ic and not dc:
            return [np.take(data, idx.astype(np.int64), axis=p["axis"] + 1)]
        if dc and not ic:
            return [np.stack([np.take(data, i.astype(np.int64), axis=p["axis"]) for i in idx])]
        return [np.stack([np.take(d, i.astype(np.int64), axis=p["axis"]) for d, i in zip(data, idx)])]
    if t == "topk":
        ax = p["axis"] + 1
        key = -x if p["op"] == "max" else x
        order = np.argsort(key, axis=ax, kind="stable")
        idx = np.take(order, np.arange(p["k"]), axis=ax)
        return [np.take_along_axis(x, idx, axis=ax), idx]
    if t == "softmax":
        return [softmax(x, p["axis"] + 1)]
    if t == "lrn":
        return [lrn(x, p["window"], p["alpha"], p["beta"], p["k"])]
    if t == "padding":
        (a, b), (c, d) = p["pre_padding"], p["post_padding"]
        y = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(max(a, 0), max(c, 0)), (max(b, 0), max(d, 0))])
        h, wd = y.shape[-2:]
        return [y[..., max(-a, 0):h - max(-c, 0), max(-b, 0):wd - max(-d, 0)]]
    if t == "identity":
        return [x]
    if t == "plugin":
        import perfkit
        spec = perfkit.ops.get_plugin(p["plugin"])
        fn = spec.impls.get("cpu") or spec.impls.get("any")
        r = fn(np, ins, p["params"])
        return list(r) if isinstance(r, (list, tuple)) else [r]
    raise NotImplementedError(t)


#: layer types whose output is a sum of products of inputs and weights: for them the oracle run on
#: absolute values gives, per output element, the sum of |terms| that rounding errors scale with
LINEAR = {"fully_connected", "matrix_multiply", "convolution", "constant", "identity", "shuffle", "concatenation",
          "padding", "gather"}


def reference_forward(network, inputs, absolute=False):
    """Runs the unfused network layer by layer with the oracles, in float64.

    ``absolute=True`` runs it on the absolute values of inputs and weights instead, which for a
    network of :data:`LINEAR` layers, elementwise sums and differences, sum/avg reductions and avg
    pooling gives each output's sum of |terms| (a difference becomes a sum): the magnitude that
    rounding errors of a dot product are bounded by. Other layers raise ``NotImplementedError``.
    """
    vals, const = {}, {}
    for t in network.inputs:
        v = np.asarray(inputs[t.name], np.float64 if t.dtype != "int32" else np.int64)
        vals[t.name] = np.abs(v) if absolute and t.dtype != "int32" else v
        const[t.name] = False
    for layer in network.layers:
        if absolute:
            layer = _absolute_layer(layer)
        if layer.type == "constant":
            v = np.asarray(layer.weights["values"])
            vals[layer.outputs[0].name] = v.astype(np.float64) if v.dtype.kind == "f" else v
            const[layer.outputs[0].name] = True
            continue
        flags = [const[t.name] for t in layer.inputs]
        ins = [vals[t.name] for t in layer.inputs]
        if all(flags):
            outs = [o[0] for o in layer_forward(layer, [i[None] for i in ins], [False] * len(ins))]
        else:
            outs = layer_forward(layer, ins, flags)
        for t, o in zip(layer.outputs, outs):
            vals[t.name] = o
            const[t.name] = all(flags)
    return {t.name: vals[t.name] for t in network.outputs}


class _AbsLayer:
    """A layer's stand-in with absolute weights, for ``reference_forward(..., absolute=True)``."""

    def __init__(self, layer, params):
        self.name, self.type, self.inputs, self.outputs = layer.name, layer.type, layer.inputs, layer.outputs
        self.params = params
        self.weights = {k: (np.abs(np.asarray(v, np.float64)) if np.asarray(v).dtype.kind == "f" else v)
                        for k, v in layer.weights.items() if v is not None}


def _absolute_layer(layer):
    p, t = layer.params, layer.type
    summing = (t == "reduce" and p["op"] in ("sum", "avg")) or (t == "pooling" and p["pool"] == "avg") or \
        (t == "scale" and layer.weights.get("power") is None)
    if t in LINEAR or summing:
        return _AbsLayer(layer, p)
    if layer.type == "elementwise" and p["op"] in ("sum", "sub"):
        return _AbsLayer(layer, {**p, "op": "sum"})
    raise NotImplementedError(f"no sum of |terms| for layer {layer.name!r} ({layer.type})")


# --- tolerances ------------------------------------------------------------------------------------
#
# u is the unit roundoff of a storage format (half the gap between 1 and the next value): storing a
# value changes it by at most u relative. fp32 2**-24, fp16 2**-11, bf16 2**-8. Arithmetic
# accumulates in float32 (u32 = 2**-24) in every precision. A layer's output reaches the test
# through: inputs and weights rounded to storage (u each), float32 arithmetic, the result rounded to
# storage (u), widened back to float32 by the output reformat (exact). Hence, per element:
#
# - relative part, 8u + 16 u32: a function of condition number k turns the input's rounding into
#   k*u of relative error; the op tests keep to domains where k <= 6 (acosh at 1.1: 5.4, exp at 4:
#   4, tan at 1.2: 3.6), and the weight and output roundings add 2u: (k + 2)u <= 8u. NumPy's float32
#   exp/erf/tanh add a few u32 (16 u32 covers them; it matters only for fp32).
# - absolute part, 4u + 256 u32 per unit of ``scale``: a sum whose terms cancel errs by the rounding
#   of its terms, not of its result, so near 0 a relative bound means nothing. A dot product of K
#   terms with rounded inputs and weights, accumulated in float32, errs by at most
#   (2u + K u32) * sum|terms|: ``scale`` is that sum of |terms| per element (pass
#   ``reference_forward(..., absolute=True)``), 1 for values of order one by default, where a
#   difference errs by 2 * 2u at most. 256 u32 covers float32 accumulation over K <= 256 terms.
#
# Measured (tests/ops/test_ops.py, every op at fp32/fp16/bf16 with strict types on the CPU): the
# worst element used 0.82u of the absolute part (a convolution) and 3.4u of the relative part (a
# 60-element product in bf16), a margin of 2.4 or more, while zeroing a probability above 0.002
# fails in fp16 (0.016 in bf16). The former check, max error <= tol * max|expected|, let a softmax
# zero every probability below 0.02 in fp16 and bf16.
#
# A network compounds the errors of its layers: ``depth`` (the longest chain of layers, see
# :func:`depth`) widens both parts by sqrt(depth), the growth of independent rounding errors. The
# sample networks used at most 1.05 of the one-layer tolerance (transformer_encoder, fp16; depth 35).
UNIT_ROUNDOFF = {"fp32": 2.0 ** -24, "fp16": 2.0 ** -11, "bf16": 2.0 ** -8}
ACCUMULATION_ROUNDOFF = 2.0 ** -24


def tolerance(precision, depth=1):
    """(rtol, atol per unit of scale) of a result ``depth`` layers deep; see the comment above."""
    u, u32 = UNIT_ROUNDOFF[precision], ACCUMULATION_ROUNDOFF
    widen = math.sqrt(depth)
    return widen * (8 * u + 16 * u32), widen * (4 * u + 256 * u32)


def depth(network):
    """The longest chain of (non-constant) layers from a network input to an output."""
    d = {t.name: 0 for t in network.inputs}
    for layer in network.layers:
        n = 1 + max((d[t.name] for t in layer.inputs), default=-1) if layer.type != "constant" else 0
        for t in layer.outputs:
            d[t.name] = n
    return max(d[t.name] for t in network.outputs)


def assert_close(actual, expected, precision, what="", *, scale=1.0, depth=1, show=5):
    """Elementwise ``|actual - expected| <= atol * scale + rtol * |expected|`` with the tolerances of
    ``precision`` (see :func:`tolerance`). ``scale``: each element's sum of |terms| (a scalar or an
    array broadcast against ``expected``); ``depth``: the chain of layers the values went through.
    NaN must meet NaN and infinities equal infinities. A failure lists the ``show`` worst elements:
    index, got, expected and allowed error."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    rtol, atol = tolerance(precision, depth)
    allowed = atol * np.broadcast_to(np.asarray(scale, np.float64), expected.shape) + rtol * np.abs(expected)
    with np.errstate(invalid="ignore"):
        err = np.abs(actual - expected)
        same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
        bad = ~same & ~(err <= allowed)                 # NaN errors are bad
    if not bad.any():
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bad, np.nan_to_num(err / allowed, nan=np.inf, posinf=np.inf), -1.0)
    worst = np.argsort(ratio, axis=None, kind="stable")[::-1][:min(show, int(bad.sum()))]
    lines = [f"  at {tuple(int(i) for i in np.unravel_index(k, expected.shape))}: got {actual.flat[k]:.6g}, "
             f"expected {expected.flat[k]:.6g}, error {err.flat[k]:.3g} > allowed {allowed.flat[k]:.3g}"
             for k in worst]
    raise AssertionError(f"{what}: {int(bad.sum())} of {expected.size} elements differ beyond {precision} "
                         f"tolerance (rtol {rtol:.3g}, atol {atol:.3g} x scale); worst:\n" + "\n".join(lines))
