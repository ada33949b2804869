"""Shape operators on run-time tensors: Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Concat, Cast,
Expand, Where, Pad. (With constant inputs these fold at import instead.)"""
from __future__ import annotations

import math

import numpy as np

from .registry import converter
from .values import BATCH, is_tensor


def _reshaped(ctx, x, shape):
    shape = [int(d) for d in shape]
    if not shape:
        ctx.fail(f"the result {ctx.values.show(x)} -> per-sample scalar: perfkit tensors keep at least one "
                 "dimension per sample")
    if shape == list(x.shape):
        return x
    return ctx.add("add_shuffle", x, reshape=shape).output


def _batch_dim(ctx, d) -> bool:
    return d == BATCH or (ctx.values.fixed_batch is not None and d == ctx.values.fixed_batch)


@converter("Reshape", attrs=("allowzero",))
def reshape(ctx):
    x = ctx.tensor(0)
    target = ctx.const_ints(1, "the shape")
    full = ctx.values.full_shape(x)
    allowzero = ctx.int_attr("allowzero", 0)
    if allowzero and 0 in target:
        ctx.fail(f"shape {target} has a 0 with allowzero=1: a zero-size tensor")
    t = []
    for i, d in enumerate(target):
        if d == 0:
            if i >= len(full):
                ctx.fail(f"shape {target} copies (0) dimension {i} that the input {ctx.values.show(x)} lacks",
                         malformed=True)
            d = full[i]
        t.append(d)
    if ctx.values.lead:
        size = math.prod(x.shape)
        rest = t[1:]
        whole = -1 not in rest and all(d > 0 for d in rest) and math.prod(rest) == size
        if not (t and (_batch_dim(ctx, t[0]) or (t[0] == -1 and whole))):
            shown = ["N" if d == BATCH else d for d in t]
            ctx.fail(f"reshaping {ctx.values.show(x)} to {shown} merges or splits the batch dimension; perfkit "
                     "reshapes per sample (if the model's batch is fixed and its reshapes drop it, load with "
                     "batch=None)")
        t = rest
    if any(d >= BATCH for d in t) or t.count(-1) > 1 or any(d < -1 for d in t):
        ctx.fail(f"shape {target} cannot be resolved per sample", malformed=any(d < -1 for d in t))
    ctx.output(_reshaped(ctx, x, t))


@converter("Flatten", attrs=("axis",))
def flatten(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    axis = ctx.int_attr("axis", 1)
    if not -rank <= axis <= rank:
        ctx.fail(f"axis {axis} is out of range for rank {rank}", malformed=True)
    if axis < 0:
        axis += rank
    full = list(x.shape)
    if ctx.values.lead:
        if axis == 0:
            ctx.fail("Flatten with axis=0 merges the batch into the second dimension; perfkit keeps the batch first")
        head, tail = math.prod(full[:axis - 1]), math.prod(full[axis - 1:])
        if head != 1:
            ctx.fail(f"Flatten(axis={axis}) of {ctx.values.show(x)} merges the batch with other dimensions")
        ctx.output(_reshaped(ctx, x, [tail]))
        return
    ctx.output(_reshaped(ctx, x, [math.prod(full[:axis]), math.prod(full[axis:])]))


@converter("Transpose", attrs=("perm",))
def transpose(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    perm = ctx.ints_attr("perm", list(range(rank))[::-1])
    if sorted(perm) != list(range(rank)):
        ctx.fail(f"perm {perm} is not a permutation of {rank} axes", malformed=True)
    lead = ctx.values.lead
    if lead and perm[0] != 0:
        ctx.fail(f"perm {perm} moves the batch dimension; perfkit transposes per sample (perm[0] must be 0)")
    ps = [p - lead for p in perm[lead:]]
    if ps == list(range(len(ps))):
        ctx.output(x)
        return
    ctx.output(ctx.add("add_shuffle", x, first_transpose=ps).output)


def _axes(ctx, attr_until: int):
    if ctx.version < attr_until:
        return ctx.ints_attr("axes", None)
    return ctx.const_ints(1, "axes") if ctx.has(1) else None


@converter("Squeeze", attrs=("axes",))
def squeeze(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    axes = _axes(ctx, 13)
    ps = list(x.shape)
    if axes is None:
        drop = {i for i, d in enumerate(ps) if d == 1}
    else:
        drop = {ctx.values.axis(ctx, a, rank) for a in axes}
        if any(ps[a] != 1 for a in drop):
            ctx.fail(f"cannot squeeze axes {axes} of {ctx.values.show(x)}: they are not all 1", malformed=True)
    ctx.output(_reshaped(ctx, x, [d for i, d in enumerate(ps) if i not in drop]))


@converter("Unsqueeze", attrs=("axes",))
def unsqueeze(ctx):
    x = ctx.tensor(0)
    axes = _axes(ctx, 13)
    if not axes:
        ctx.fail("Unsqueeze needs axes", malformed=True)
    out_rank = ctx.values.rank(x) + len(axes)
    norm = sorted(a % out_rank if -out_rank <= a < out_rank else ctx.fail(f"axis {a} out of range", malformed=True)
                  for a in axes)
    lead = ctx.values.lead
    if lead and norm[0] == 0:
        ctx.fail("Unsqueeze at axis 0 puts a dimension before the batch; perfkit keeps the batch first")
    shape = list(x.shape)
    for a in norm:
        shape.insert(a - lead, 1)
    ctx.output(_reshaped(ctx, x, shape))


@converter("Concat", attrs=("axis",))
def concat(ctx):
    ins = [ctx.input(i) for i in range(ctx.n_inputs) if ctx.has(i)]
    rank = max(ctx.values.rank(v) for v in ins)
    axis = ctx.int_attr("axis", None)
    if axis is None:
        ctx.fail("Concat needs an axis", malformed=True)
    a = ctx.values.axis(ctx, axis, rank)
    parts = []
    for v in ins:
        if ctx.values.rank(v) != rank:
            ctx.fail("Concat inputs have different ranks", malformed=True)
        parts.append(v if is_tensor(v) else ctx.values.constant_tensor(ctx, v, rank))
    if len(parts) == 1:
        ctx.output(parts[0])
        return
    ctx.output(ctx.add("add_concatenation", parts, a).output)


CAST = {1: "float32", 11: "float32", 10: "float16", 2: "int32", 3: "int32", 4: "int32", 5: "int32", 6: "int32",
        7: "int32", 12: "int32", 13: "int32"}


@converter("Cast", attrs=("to", "saturate", "round_mode"))
def cast(ctx):
    x = ctx.tensor(0)
    to = ctx.int_attr("to", None)
    dtype = CAST.get(to)
    if dtype is None:
        import onnx
        name = onnx.TensorProto.DataType.Name(to) if to in onnx.TensorProto.DataType.values() else to
        ctx.fail(f"Cast to {name} is not supported at run time; perfkit tensors are float32, float16 or int32")
    if dtype == x.dtype:
        ctx.output(x)
        return
    ctx.output(ctx.add("add_identity", x, dtype=dtype).output)


@converter("Tile")
def tile(ctx):
    x = ctx.tensor(0)
    reps = ctx.const_ints(1, "repeats")
    rank = ctx.values.rank(x)
    if len(reps) != rank or min(reps) < 1:
        ctx.fail(f"repeats {reps} must be {rank} positive ints (zero repeats would make an empty tensor)",
                 malformed=min(reps, default=1) < 0 or len(reps) != rank)
    if ctx.values.lead and reps[0] != 1:
        ctx.fail("tiling the batch dimension is not supported")
    todo = [(ctx.values.axis(ctx, a, rank), r) for a, r in enumerate(reps) if r != 1]
    for k, (a, r) in enumerate(todo):
        x = ctx.add("add_concatenation", [x] * r, a, part=None if k == len(todo) - 1 else f"axis{a}").output
    ctx.output(x)


@converter("CastLike", attrs=("saturate", "round_mode"))
def cast_like(ctx):
    x, like = ctx.input(0), ctx.input(1)
    want = like.dtype if is_tensor(like) else str(np.asarray(like).dtype)
    if not is_tensor(x):                      # a constant cast to a run-time tensor's type stays a constant
        ctx.output(np.asarray(x).astype({"int32": np.int64}.get(want, want)))
        return
    dtype = {"float64": "float32", "float32": "float32", "float16": "float16"}.get(want, "int32")
    if "bool" in want:
        ctx.fail("CastLike to booleans at run time is not supported")
    ctx.output(x if dtype == x.dtype else ctx.add("add_identity", x, dtype=dtype).output)


@converter("Expand")
def expand(ctx):
    x = ctx.tensor(0)
    target = ctx.const_ints(1, "the shape")
    lead = ctx.values.lead
    if lead:
        if len(target) > ctx.values.rank(x):
            ctx.fail(f"expanding {ctx.values.show(x)} to rank {len(target)} puts dimensions before the batch")
        if len(target) == ctx.values.rank(x):
            if not (target[0] in (1, BATCH) or _batch_dim(ctx, target[0])):
                ctx.fail(f"Expand to {target} changes the batch dimension", malformed=True)
            target = target[1:]
    if any(d < 1 or d >= BATCH for d in target):
        ctx.fail(f"Expand to {target}: dimensions must be positive", malformed=True)
    ps = list(x.shape)
    full = [1] * (len(ps) - len(target)) + list(target)
    try:
        out = list(np.broadcast_shapes(tuple(ps), tuple(full)))
    except ValueError:
        ctx.fail(f"{ctx.values.show(x)} does not broadcast to {target}", malformed=True)
    if out == ps:
        ctx.output(x)
        return
    ctx.output(ctx.add("add_expand", x, out).output)


@converter("Where")
def where(ctx):
    vals = ctx.values
    cond = ctx.input(0)
    if not is_tensor(cond):
        cond = np.asarray(cond).astype(np.int32)
    c, x, y = vals.operands(ctx, [cond, ctx.input(1), ctx.input(2)])
    ctx.output(ctx.add("add_select", c, x, y).output)


@converter("Pad", attrs=("mode", "pads", "value"))
def pad(ctx):
    x = ctx.tensor(0)
    mode = ctx.choice("mode", "constant", ("constant", "reflect", "edge", "wrap"))
    rank = ctx.values.rank(x)
    if ctx.version < 11:
        pads, value = ctx.ints_attr("pads", None), ctx.float_attr("value", 0.0)
        axes = list(range(rank))
    else:
        pads = ctx.const_ints(1, "pads")
        value = float(np.asarray(ctx.const(2, "constant_value")).reshape(-1)[0]) if ctx.has(2) else 0.0
        axes = ctx.const_ints(3, "axes") if ctx.has(3) else list(range(rank))
    if pads is None or len(pads) != 2 * len(axes):
        ctx.fail(f"pads {pads} must hold 2 values per padded axis ({len(axes)})", malformed=True)
    if np.isnan(value):
        ctx.fail("a NaN pad value is not supported")
    value = float(np.clip(value, -3.4028234663852886e38, 3.4028234663852886e38))
    n = len(axes)
    amounts = {}
    for i, a in enumerate(axes):
        pre, post = pads[i], pads[i + n]
        if not -rank <= a < rank:
            ctx.fail(f"axis {a} out of range", malformed=True)
        if (a % rank) < ctx.values.lead:
            if pre or post:
                ctx.fail("padding the batch dimension is not supported")
            continue
        if pre or post:
            amounts[ctx.values.axis(ctx, a, rank)] = (pre, post)
    if not amounts:
        ctx.output(x)
        return
    first = min(amounts)
    span = range(first, len(x.shape))
    pre = [amounts.get(a, (0, 0))[0] for a in span]
    post = [amounts.get(a, (0, 0))[1] for a in span]
    if mode != "constant":
        value = 0.0                       # ONNX ignores constant_value outside constant mode
        if min(pre + post) < 0:           # crops first: the other modes pad only
            crop = [(a, max(0, -p), x.shape[a] - max(0, -q)) for a, p, q in zip(span, pre, post) if min(p, q) < 0]
            x = ctx.add("add_slice", x, [c[1] for c in crop], [c[2] for c in crop], axes=[c[0] for c in crop],
                        part="crop").output
            pre, post = [max(0, p) for p in pre], [max(0, q) for q in post]
    ctx.output(ctx.add("add_padding", x, pre, post, mode=mode, value=value).output)


@converter("DepthToSpace", "SpaceToDepth", attrs=("blocksize", "mode"))
def depth_space(ctx):
    """Channel <-> spatial rearrangements as reshape-transpose-reshape shuffles of the per-sample (C, H, W)."""
    x = ctx.tensor(0)
    if ctx.values.rank(x) != 4 or not ctx.values.lead:
        ctx.fail(f"{ctx.op_type} needs a batched (N, C, H, W) input, not {ctx.values.show(x)}")
    b = ctx.int_attr("blocksize", None)
    c, h, w = x.shape
    if b is None or b < 1:
        ctx.fail("blocksize must be a positive int", malformed=True)
    if ctx.op_type == "DepthToSpace":
        mode = ctx.choice("mode", "DCR", ("DCR", "CRD"))
        if c % (b * b):
            ctx.fail(f"{c} channels are not divisible by blocksize^2 = {b * b}", malformed=True)
        cc = c // (b * b)
        if mode == "DCR":
            shape, perm = [b, b, cc, h, w], [2, 3, 0, 4, 1]
        else:
            shape, perm = [cc, b, b, h, w], [0, 3, 1, 4, 2]
        out = [cc, h * b, w * b]
    else:
        if h % b or w % b:
            ctx.fail(f"{h}x{w} is not divisible by blocksize {b}", malformed=True)
        mode = ctx.choice("mode", "DCR", ("DCR", "CRD"))
        shape = [c, h // b, b, w // b, b]
        perm = [2, 4, 0, 1, 3] if mode == "DCR" else [0, 2, 4, 1, 3]
        out = [c * b * b, h // b, w // b]
    y = ctx.add("add_shuffle", x, reshape=shape, second_transpose=perm, part="split").output
    ctx.output(ctx.add("add_shuffle", y, reshape=out).output)
