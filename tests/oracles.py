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


def reference_forward(network, inputs):
    """Runs the unfused network layer by layer with the oracles, in float64."""
    vals, const = {}, {}
    for t in network.inputs:
        vals[t.name] = np.asarray(inputs[t.name], np.float64 if t.dtype != "int32" else np.int64)
        const[t.name] = False
    for layer in network.layers:
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


def assert_close(actual, expected, precision, what=""):
    """Compares with a tolerance per precision, scaled by the magnitude of the expected values."""
    tol = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 6e-2}[precision]
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    err = float(np.abs(actual - expected).max()) if expected.size else 0.0
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol} x {scale:.3g} ({precision})"
