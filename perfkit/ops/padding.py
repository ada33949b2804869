"""Padding of the last per-sample dims: constant (zero by default), reflect, edge or wrap.

``pre_padding``/``post_padding``: an int or a pair pads the last two dims (TensorRT's padding layer);
a longer sequence pads as many trailing dims (ONNX ``Pad``, whose batch entries the importer drops).
In constant mode negative amounts crop. ``reflect`` mirrors the values next to the border (the
border value itself is not repeated), ``edge`` repeats the border value, ``wrap`` continues from the
other side; each needs pads shorter than the dim (reflect) or at most as long (wrap).
"""
from __future__ import annotations

import math
import numbers

from ..errors import NetworkDefinitionError, ShapeError
from .base import Cost, Op, TensorSpec, register_op

MODES = ("constant", "reflect", "edge", "wrap")


def _amounts(v, what):
    if isinstance(v, numbers.Integral):
        return (int(v), int(v))
    try:
        items = tuple(int(x) for x in v)
    except (TypeError, ValueError):
        raise ShapeError(f"{what} must be an int or a sequence of ints, not {v!r}") from None
    if not items:
        raise ShapeError(f"{what} is empty; give one amount per padded trailing dim")
    return items


@register_op
class Padding(Op):
    type = "padding"
    short = "pad"

    def check(self, params, weights):
        raw_pre, raw_post = params.get("pre_padding", 0), params.get("post_padding", 0)
        pre, post = _amounts(raw_pre, "pre_padding"), _amounts(raw_post, "post_padding")
        one_pre, one_post = isinstance(raw_pre, numbers.Integral), isinstance(raw_post, numbers.Integral)
        if one_pre and not one_post:          # an int beside a sequence pads every dim the sequence names
            pre = (pre[0],) * len(post)
        if one_post and not one_pre:
            post = (post[0],) * len(pre)
        if len(pre) != len(post):
            raise ShapeError(f"pre_padding {pre} and post_padding {post} pad different numbers of dims; give both "
                             "the same length (one amount per trailing dim)")
        params["pre_padding"], params["post_padding"] = pre, post
        mode = params.get("mode", "constant")
        if mode not in MODES:
            raise NetworkDefinitionError(f"padding mode must be one of {', '.join(MODES)}, not {mode!r}")
        params["mode"] = mode
        value = params.get("value", 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise NetworkDefinitionError(f"padding value must be a finite number, not {value!r}")
        if value and mode != "constant":
            raise NetworkDefinitionError(f"a padding value ({value}) applies to mode 'constant' only, not {mode!r}")
        params["value"] = float(value)
        if mode != "constant" and min(pre + post) < 0:
            raise NetworkDefinitionError(f"{mode} padding cannot crop (amounts {pre}/{post}); crop with add_slice "
                                         "first, or use mode 'constant'")
        return params

    def infer(self, params, inputs, weights):
        x = inputs[0]
        pre, post, mode = params["pre_padding"], params["post_padding"], params["mode"]
        n = len(pre)
        if len(x.shape) < n:
            raise ShapeError(f"padding of the last {n} dims needs a per-sample rank >= {n}, got {x.shape}")
        lead, dims = x.shape[:len(x.shape) - n], x.shape[len(x.shape) - n:]
        out = tuple(d + a + b for d, a, b in zip(dims, pre, post))
        if min(out) <= 0:
            raise ShapeError(f"padding {pre}/{post} crops {x.shape} to nothing")
        for d, a, b in zip(dims, pre, post):
            if mode == "reflect" and max(a, b) >= d:
                raise ShapeError(f"reflect padding {max(a, b)} of a dim of {d} needs pads smaller than the dim "
                                 f"(at most {d - 1})")
            if mode == "wrap" and max(a, b) > d:
                raise ShapeError(f"wrap padding {max(a, b)} of a dim of {d} needs pads at most the dim")
        return [TensorSpec(tuple(lead) + out, x.dtype)]

    def compute(self, env, ins, outs, params, weights):
        x, out = ins[0], outs[0]
        pre, mode = params["pre_padding"], params["mode"]
        first = x.ndim - len(pre)
        src, dst = [slice(None)] * x.ndim, [slice(None)] * x.ndim
        for i, a in enumerate(pre):       # source rows [s0, s1) land at output rows [s0 + a, s1 + a)
            n, on = x.shape[first + i], out.shape[first + i]
            s0, s1 = max(0, -a), min(n, on - a)
            src[first + i], dst[first + i] = slice(s0, s1), slice(s0 + a, s1 + a)
        if mode == "constant":
            out.fill(params["value"])
            out[tuple(dst)] = x[tuple(src)]
            return
        out[tuple(dst)] = x
        for i, (p, q) in enumerate(zip(pre, params["post_padding"])):      # axis by axis, borders included
            ax, m = first + i, x.shape[first + i]

            def at(s, ax=ax):
                index = [slice(None)] * out.ndim
                index[ax] = s
                return tuple(index)
            if p:
                out[at(slice(0, p))] = out[at({"reflect": slice(2 * p, p, -1), "edge": slice(p, p + 1),
                                               "wrap": slice(m, p + m)}[mode])]
            if q:
                e = p + m                     # one past the last original row
                out[at(slice(e, e + q))] = out[at({"reflect": slice(e - 2, e - 2 - q if e - 2 - q >= 0 else None, -1),
                                                   "edge": slice(e - 1, e), "wrap": slice(p, p + q)}[mode])]

    def cost(self, params, inputs, outputs, weights):
        return Cost(flops=0.0, bytes=float(inputs[0].nbytes + outputs[0].nbytes))
