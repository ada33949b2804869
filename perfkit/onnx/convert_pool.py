"""Pooling: MaxPool, AveragePool (pads, auto_pad, ceil_mode, count_include_pad) and the global pools.

perfkit's pooling layer pads symmetrically; other paddings (asymmetric, ceil_mode's extra row) are made
explicit: -max for max pooling, zeros for averages, whose counts are then corrected by a constant map
of how many values each window really averages (ONNX's rule for either count_include_pad)."""
from __future__ import annotations

import math

import numpy as np

from .compose import pad_axis
from .convert_nn import conv_pads, from_chw, reshaped_back, to_chw
from .registry import converter
from .values import FLOAT_MAX

POOL_ATTRS = ("auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "storage_order",
              "strides")


def _out_size(n, k, s, pre, post, ceil):
    size = (n + pre + post - k) / s + 1
    if not ceil:
        return int(math.floor(size))
    o = int(math.ceil(size))
    if (o - 1) * s >= n + pre:        # the last window must start inside the input or its left padding
        o -= 1
    return o


def _counts(n, k, s, o, lo, hi):
    start = np.arange(o) * s
    return np.minimum(start + k, hi) - np.maximum(start, lo)


@converter("MaxPool", "AveragePool", attrs=POOL_ATTRS)
def pool(ctx):
    if any(ctx.node.output[1:]):
        ctx.fail("MaxPool's Indices output is not supported")
    x = ctx.tensor(0)
    ks = ctx.ints_attr("kernel_shape")
    if not ks or min(ks) < 1:
        ctx.fail("kernel_shape is required (positive ints)", malformed=True)
    spatial = len(ks)
    strides = ctx.ints_attr("strides", [1] * spatial)
    dil = ctx.ints_attr("dilations", [1] * spatial)
    if len(strides) != spatial or min(strides) < 1:
        ctx.fail(f"strides {strides} must be {spatial} positive ints", malformed=True)
    if len(dil) != spatial or min(dil) < 1:
        ctx.fail(f"dilations {dil} must be {spatial} positive ints", malformed=True)
    ceil = bool(ctx.int_attr("ceil_mode", 0))
    include = bool(ctx.int_attr("count_include_pad", 0))
    is_max = ctx.op_type == "MaxPool"
    integer = x.dtype == "int32"
    if integer:                    # pooled in float32 (exact below 2**24), then back to integers
        if not is_max:
            ctx.fail("average pooling of integer tensors is not supported")
        x = ctx.add("add_identity", x, dtype="float32", part="float").output
    x = to_chw(ctx, x, spatial)
    in_sp = list(x.shape[3 - spatial:])
    pads = conv_pads(ctx, in_sp, ks, strides, dil)
    if spatial == 1:
        ks, strides, pads, in_sp, dil = [1] + ks, [1] + strides, [(0, 0)] + pads, [1] + in_sp, [1] + dil
    if any(d != 1 for d in dil):
        if ctx.attr("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
            ctx.fail("auto_pad SAME with dilations is not supported: onnxruntime and ONNX's reference disagree on "
                     "its padding; give explicit pads")
        y = _dilated(ctx, x, ks, strides, dil, pads, in_sp, ceil, include, is_max)
        ctx.output(_back(ctx, from_chw(ctx, y, spatial, "chw" if integer else None), integer))
        return
    outs = [_out_size(n, k, s, a, b, ceil) for n, k, s, (a, b) in zip(in_sp, ks, strides, pads)]
    if min(outs) < 1:
        ctx.fail(f"a {ks} window does not fit an input of {in_sp} with pads {pads}", malformed=True)
    extra = [max(0, (o - 1) * s + k - (n + a + b)) for o, k, s, n, (a, b) in zip(outs, ks, strides, in_sp, pads)]
    simple = all(a == b and e == 0 and a < k for (a, b), e, k in zip(pads, extra, ks))
    kind = "max" if is_max else "avg"
    if simple:
        y = ctx.add("add_pooling", x, kind, tuple(ks), stride=tuple(strides), padding=tuple(p[0] for p in pads),
                    exclude_padding=not include, part="pool" if integer or reshaped_back(ctx, spatial) else None).output
        ctx.output(_back(ctx, from_chw(ctx, y, spatial, "chw" if integer else None), integer))
        return
    fill = -FLOAT_MAX if is_max else 0.0
    for axis, ((a, b), e) in zip((1, 2), zip(pads, extra)):
        x = pad_axis(ctx, x, axis, a, b + e, fill, f"pad{axis}")
    fix = None
    if not is_max:
        counts = []
        for n, k, s, o, (a, b) in zip(in_sp, ks, strides, outs, pads):
            lo, hi = (0, n + a + b) if include else (a, a + n)
            counts.append(_counts(n, k, s, o, lo, hi))
        area = float(np.prod(ks))
        count = np.outer(counts[0], counts[1]).astype(np.float64)
        if not np.all(count == area):
            fix = (area / np.maximum(count, 1)).astype(np.float32)[None]
    y = ctx.add("add_pooling", x, kind, tuple(ks), stride=tuple(strides), padding=0, exclude_padding=False,
                part=None if fix is None and not integer and not reshaped_back(ctx, spatial) else "pool").output
    if fix is not None:
        t = ctx.values.constant_tensor(ctx, fix, label=f"{ctx.base}/count_fix")
        y = ctx.add("add_elementwise", y, t, "prod",
                    part="count" if integer or reshaped_back(ctx, spatial) else None).output
    ctx.output(_back(ctx, from_chw(ctx, y, spatial, "chw" if integer else None), integer))


def _back(ctx, y, integer: bool):
    return ctx.add("add_identity", y, dtype="int32").output if integer else y


@converter("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    if rank < 3:
        ctx.fail(f"input {ctx.values.show(x)} has no spatial dimensions", malformed=True)
    axes = [ctx.values.axis(ctx, a, rank) for a in range(2, rank)]
    op = "avg" if ctx.op_type == "GlobalAveragePool" else "max"
    ctx.output(ctx.add("add_reduce", x, op, axes, keep_dims=True).output)


def _dilated(ctx, x, ks, strides, dil, pads, in_sp, ceil, include, is_max):
    """Dilated pooling, which perfkit's pooling layer lacks. Strides that are multiples of the dilations: the
    padded input's phase x[::d] pooled with the plain window (three layers); otherwise one strided slice per
    window tap combined by element-wise max or sum. Averages are then rescaled by each window's count of
    counted values."""
    span = [(k - 1) * d + 1 for k, d in zip(ks, dil)]
    outs = [_out_size(n, k, s, a, b, ceil) for n, k, s, (a, b) in zip(in_sp, span, strides, pads)]
    if min(outs) < 1:
        ctx.fail(f"a dilated {ks} window does not fit an input of {in_sp} with pads {pads}", malformed=True)
    extra = [max(0, (o - 1) * s + k - (n + a + b)) for o, k, s, n, (a, b) in zip(outs, span, strides, in_sp, pads)]
    for axis, ((a, b), e) in zip((1, 2), zip(pads, extra)):
        x = pad_axis(ctx, x, axis, a, b + e, -FLOAT_MAX if is_max else 0.0, f"pad{axis}")
    if all(st % d == 0 for st, d in zip(strides, dil)):
        # strides that are multiples of the dilation: every window reads one phase, x[::d], as a plain window
        x = ctx.add("add_slice", x, [0, 0], [2 ** 62, 2 ** 62], axes=[1, 2], steps=list(dil), part="phase").output
        acc = ctx.add("add_pooling", x, "max" if is_max else "avg", tuple(ks),
                      stride=tuple(st // d for st, d in zip(strides, dil)), padding=0, exclude_padding=False,
                      part="pool").output
        if tuple(acc.shape[1:]) != tuple(outs):
            acc = ctx.add("add_slice", acc, [0, 0], list(outs), axes=[1, 2], part="crop").output
        area = float(np.prod(ks))
    else:
        if ks[0] * ks[1] > 64:
            ctx.fail(f"a dilated {ks} window with strides {strides} that are not multiples of the dilations {dil} "
                     "is not supported (more than 64 window taps)")
        acc, area = None, 1.0
        for i in range(ks[0]):
            for j in range(ks[1]):
                start = [i * dil[0], j * dil[1]]
                end = [start[0] + (outs[0] - 1) * strides[0] + 1, start[1] + (outs[1] - 1) * strides[1] + 1]
                tap = ctx.add("add_slice", x, start, end, axes=[1, 2], steps=list(strides),
                              part=f"tap{i}_{j}").output
                acc = tap if acc is None else ctx.add("add_elementwise", acc, tap, "max" if is_max else "sum",
                                                      part=f"window{i}_{j}").output
    if is_max:
        return acc
    counts = []
    for n, k, s, d, o, (a, b) in zip(in_sp, ks, strides, dil, outs, pads):
        lo, hi = (0, n + a + b) if include else (a, a + n)
        pos = np.arange(o)[:, None] * s + np.arange(k)[None, :] * d
        counts.append(((pos >= lo) & (pos < hi)).sum(axis=1))
    inv = (area / np.maximum(np.outer(counts[0], counts[1]), 1)).astype(np.float32)[None]
    return ctx.add("add_elementwise", acc, ctx.values.constant_tensor(ctx, inv, label=f"{ctx.base}/counts"),
                   "prod").output
