"""Indexing and reductions on run-time tensors: Gather, Slice, Split, TopK, ArgMax/ArgMin, the Reduce
family, Resize/Upsample (nearest and linear, as gathers along each resized axis)."""
from __future__ import annotations

import numpy as np

from .compose import take
from .registry import converter
from .values import BATCH, is_tensor


@converter("Gather", attrs=("axis",))
def gather(ctx):
    data, idx = ctx.input(0), ctx.input(1)
    axis = ctx.int_attr("axis", 0)
    vals = ctx.values
    if is_tensor(data) and not is_tensor(idx):
        a = vals.axis(ctx, axis, vals.rank(data))
        ind = np.asarray(idx)
        if ind.dtype.kind not in "iu":
            ctx.fail(f"indices must be integers, not {ind.dtype}", malformed=True)
        n = data.shape[a]
        if ind.size and (ind.min() < -n or ind.max() >= n):
            ctx.fail(f"indices {ind.min()}..{ind.max()} are out of range for an axis of {n}", malformed=True)
        ind = np.where(ind < 0, ind + n, ind)
        if ind.ndim == 0:
            ctx.output(take(ctx, data, a, ind.reshape(1), None, keep_axis=False))
            return
        t = vals.constant_tensor(ctx, ind.astype(np.int32), label=f"{ctx.base}/indices")
        ctx.output(ctx.add("add_gather", data, t, a).output)
        return
    if not is_tensor(data) and is_tensor(idx):
        d = np.asarray(data)
        if d.ndim == 0:
            ctx.fail("Gather from a scalar", malformed=True)
        axis = axis % d.ndim if -d.ndim <= axis < d.ndim else ctx.fail(f"axis {axis} out of range", malformed=True)
        if vals.lead and axis != 0:
            ctx.fail(f"a constant table gathered along axis {axis} by per-sample indices would put the batch in the "
                     "middle; supported: axis 0 (embedding lookup)")
        if idx.dtype != "int32":
            ctx.fail(f"indices must be integers, not {idx.dtype}", malformed=True)
        t = vals.constant_tensor(ctx, d, label=ctx.node.input[0])
        ctx.output(ctx.add("add_gather", t, idx, axis).output)
        return
    if vals.lead:
        ctx.fail("Gather with run-time data and run-time indices crosses samples (ONNX gathers every index for "
                 "every sample); supported: constant indices, or a constant table with run-time indices")
    ctx.output(ctx.add("add_gather", data, idx, vals.axis(ctx, axis, vals.rank(data))).output)


@converter("Slice", attrs=("axes", "ends", "starts"))
def slice_(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    if ctx.version < 10:
        starts, ends = ctx.ints_attr("starts", None), ctx.ints_attr("ends", None)
        axes, steps = ctx.ints_attr("axes", None), None
    else:
        starts, ends = ctx.const_ints(1, "starts"), ctx.const_ints(2, "ends")
        axes = ctx.const_ints(3, "axes") if ctx.has(3) else None
        steps = ctx.const_ints(4, "steps") if ctx.has(4) else None
    if starts is None or ends is None or len(starts) != len(ends):
        ctx.fail("starts and ends must be given, of equal length", malformed=True)
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    if len(axes) != len(starts) or len(steps) != len(starts) or 0 in steps:
        ctx.fail("axes and steps must match starts; steps must be non-zero", malformed=True)
    keep = ([], [], [], [])
    big = 2**63 - 1
    for s, e, a, st in zip(starts, ends, axes, steps):
        if not -rank <= a < rank:
            ctx.fail(f"axis {a} out of range for rank {rank}", malformed=True)
        if a % rank < ctx.values.lead:
            if s in (0, -BATCH) and st == 1 and e >= BATCH - 1:
                continue
            ctx.fail(f"slicing the batch dimension ({s}:{e}:{st}) is not supported")
        pa = ctx.values.axis(ctx, a, rank)
        n = x.shape[pa]
        index = np.arange(n)[slice(max(min(s, big), -big), max(min(e, big), -big), st)]
        if index.size == n and np.array_equal(index, np.arange(n)):
            continue
        if index.size == 0:
            ctx.fail(f"selects nothing along an axis of size {n}; perfkit tensors have no empty dimensions")
        for lst, v in zip(keep, (max(min(s, big), -big), max(min(e, big), -big), pa, st)):
            lst.append(int(v))
    if not keep[0]:
        ctx.output(x)
        return
    ctx.output(ctx.add("add_slice", x, keep[0], keep[1], axes=keep[2], steps=keep[3]).output)


@converter("Split", attrs=("axis", "split", "num_outputs"))
def split(ctx):
    x = ctx.tensor(0)
    a = ctx.values.axis(ctx, ctx.int_attr("axis", 0), ctx.values.rank(x))
    n = x.shape[a]
    outs = len(ctx.node.output)
    sizes = ctx.ints_attr("split", None) if ctx.version < 13 else (ctx.const_ints(1, "split") if ctx.has(1) else None)
    if sizes is None:
        k = ctx.int_attr("num_outputs", outs) or outs
        chunk = -(-n // k)
        sizes = [min(chunk, n - i * chunk) for i in range(k)]
    if len(sizes) != outs or sum(sizes) != n or min(sizes) < 0:
        ctx.fail(f"split sizes {sizes} do not cut an axis of {n} into {outs} outputs", malformed=True)
    if 0 in sizes:
        ctx.fail(f"split sizes {sizes} make an empty output; perfkit tensors have no empty dimensions")
    start = 0
    for i, s in enumerate(sizes):
        y = x if s == n else ctx.add("add_slice", x, [start], [start + s], axes=[a], part=str(i)).output
        ctx.output(y, i)
        start += s


@converter("TopK", attrs=("axis", "k", "largest", "sorted"))
def topk(ctx):
    x = ctx.tensor(0)
    if ctx.version < 10:
        k = ctx.int_attr("k", None)
    else:
        kv = ctx.const_ints(1, "K")
        k = kv[0] if len(kv) == 1 else None
    if k is None or k < 1:
        ctx.fail(f"K must be one positive int, not {k}", malformed=True)
    a = ctx.values.axis(ctx, ctx.int_attr("axis", -1), ctx.values.rank(x))
    largest = ctx.int_attr("largest", 1)
    layer = ctx.add("add_topk", x, "max" if largest else "min", k, a)
    ctx.output(layer.outputs[0], 0)
    ctx.output(layer.outputs[1], 1)


@converter("ArgMax", "ArgMin", attrs=("axis", "keepdims", "select_last_index"))
def arg(ctx):
    x = ctx.tensor(0)
    a = ctx.values.axis(ctx, ctx.int_attr("axis", 0), ctx.values.rank(x))
    keep = ctx.int_attr("keepdims", 1)
    last = bool(ctx.int_attr("select_last_index", 0))
    if last:        # the last of ties: the first in the reversed axis, counted back from the end
        x = ctx.add("add_slice", x, [-1], [-(2**63 - 1)], axes=[a], steps=[-1], part="reversed").output
    layer = ctx.add("add_topk", x, "max" if ctx.op_type == "ArgMax" else "min", 1, a,
                    part=None if keep and not last else "topk")
    y = layer.outputs[1]
    if last:
        n = ctx.values.constant_tensor(ctx, np.full((1,) * len(y.shape), x.shape[a] - 1, np.int32),
                                       label=f"{ctx.base}/last")
        y = ctx.add("add_elementwise", n, y, "sub", part=None if keep else "index").output
    if not keep:
        shape = [d for i, d in enumerate(y.shape) if i != a]
        if not shape:
            ctx.fail("the result has no per-sample dimensions (use keepdims=1)")
        y = ctx.add("add_shuffle", y, reshape=shape).output
    ctx.output(y)


REDUCE = {"ReduceSum": "sum", "ReduceMean": "avg", "ReduceMax": "max", "ReduceMin": "min", "ReduceProd": "prod",
          "ReduceL1": "l1_norm", "ReduceL2": "l2_norm", "ReduceLogSum": "log_sum",
          "ReduceLogSumExp": "log_sum_exp", "ReduceSumSquare": "sum_squares"}


@converter(*REDUCE, attrs=("axes", "keepdims", "noop_with_empty_axes"))
def reduce(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    from_input = ctx.version >= (13 if ctx.op_type == "ReduceSum" else 18)
    axes = (ctx.const_ints(1, "axes") if ctx.has(1) else None) if from_input else ctx.ints_attr("axes", None)
    if not axes:
        if ctx.int_attr("noop_with_empty_axes", 0):
            ctx.output(x)
            return
        axes = list(range(rank))
    ps_axes = [ctx.values.axis(ctx, a, rank) for a in axes]
    keep = bool(ctx.int_attr("keepdims", 1))
    if not keep and len(set(ps_axes)) == len(x.shape):
        ctx.fail("reducing every per-sample dimension without keepdims leaves a per-sample scalar; perfkit "
                 "tensors keep a dimension per sample (keepdims=1 works)")
    ctx.output(ctx.add("add_reduce", x, REDUCE[ctx.op_type], ps_axes, keep_dims=keep).output)


@converter("Hardmax", attrs=("axis",))
def hardmax(ctx):
    """1 where a value is the first maximum along the axis, else 0: top-1 index == position."""
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    if ctx.version < 13 and ctx.int_attr("axis", 1) != rank - 1:
        ctx.fail("Hardmax before opset 13 over flattened trailing dimensions is not supported (only the last axis)")
    a = ctx.values.axis(ctx, ctx.int_attr("axis", -1 if ctx.version >= 13 else 1), rank)
    idx = ctx.add("add_topk", x, "max", 1, a, part="argmax").outputs[1]
    shape = [1] * len(x.shape)
    shape[a] = x.shape[a]
    pos = ctx.values.constant_tensor(ctx, np.arange(x.shape[a], dtype=np.int32).reshape(shape),
                                     label=f"{ctx.base}/positions")
    hit = ctx.add("add_elementwise", idx, pos, "equal", part="equal").output
    ctx.output(ctx.add("add_identity", hit, dtype=x.dtype).output)


@converter("LpNormalization", attrs=("axis", "p"))
def lp_normalization(ctx):
    x = ctx.tensor(0)
    p = ctx.int_attr("p", 2)
    if p not in (1, 2):
        ctx.fail(f"p={p}: LpNormalization is defined for p = 1 or 2", malformed=True)
    a = ctx.values.axis(ctx, ctx.int_attr("axis", -1), ctx.values.rank(x))
    norm = ctx.add("add_reduce", x, "l1_norm" if p == 1 else "l2_norm", [a], keep_dims=True, part="norm").output
    tiny = ctx.values.constant_tensor(ctx, np.full((1,) * len(x.shape), np.finfo(np.float32).tiny, np.float32),
                                      label=f"{ctx.base}/tiny")
    norm = ctx.add("add_elementwise", norm, tiny, "max", part="nonzero").output     # 0 / tiny = 0, as ONNX gives
    ctx.output(ctx.add("add_elementwise", x, norm, "div").output)
