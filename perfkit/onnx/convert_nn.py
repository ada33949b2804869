"""Convolution, GEMM, matrix products, normalisations and softmax."""
from __future__ import annotations

import numpy as np

from .registry import converter
from .values import is_tensor


def to_chw(ctx, x, spatial: int):
    """A runtime tensor as perfkit's per-sample (C, H, W), and the per-sample shape to restore after.
    1-D ops get H=1; without a batch (batch=None) a leading 1 is dropped."""
    ps = tuple(x.shape)
    lead = ctx.values.lead
    want = 1 + spatial + (1 - lead)
    if len(ps) != want:
        ctx.fail(f"input {ctx.values.show(x)} must have {spatial} spatial dimension(s) after N and C")
    if not lead:
        if ps[0] != 1:
            ctx.fail(f"without a batch dimension (batch=None) the input's leading dim must be 1, not {ps[0]}")
        ps = ps[1:]
    if spatial == 2:
        chw = ps
    elif spatial == 1:
        chw = (ps[0], 1, ps[1])
    else:
        ctx.fail(f"{spatial}-D {ctx.op_type} is not supported; perfkit's layers are 2-D (1-D through H=1)")
    if chw != tuple(x.shape):
        x = ctx.add("add_shuffle", x, reshape=list(chw), part="to_chw").output
    return x


def reshaped_back(ctx, spatial: int) -> bool:
    """Whether :func:`from_chw` adds a layer (then it, not the op's layer, carries the node's name)."""
    return spatial != 2 or not ctx.values.lead


def from_chw(ctx, y, spatial: int, part: str | None = None):
    """Back from (C, H, W) to the ONNX rank (undoing :func:`to_chw`)."""
    c, h, w = y.shape
    shape = (c, h, w) if spatial == 2 else (c, w)
    if not ctx.values.lead:
        shape = (1,) + shape
    if shape == tuple(y.shape):
        return y
    return ctx.add("add_shuffle", y, reshape=list(shape), part=part).output


def conv_pads(ctx, in_hw, kernel, strides, dilations, pads_attr="pads", ceil=False):
    """(pre, post) per spatial dim from ``pads``/``auto_pad`` (ceil_mode adds post padding where needed)."""
    n = len(kernel)
    auto = ctx.choice("auto_pad", "NOTSET", ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"))
    if auto == "VALID":
        return [(0, 0)] * n
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            o = -(-size // s)
            total = max(0, (o - 1) * s + (k - 1) * d + 1 - size)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return out
    pads = ctx.ints_attr(pads_attr, [0] * (2 * n))
    if len(pads) != 2 * n or any(p < 0 for p in pads):
        ctx.fail(f"pads {pads} must be {2 * n} non-negative ints", malformed=True)
    return [(pads[i], pads[i + n]) for i in range(n)]


def _geometry(ctx, unsupported_rank: str) -> tuple:
    """A (transposed) convolution's weights W (input 1, rank 3 or 4, else ``unsupported_rank`` is the error),
    its spatial rank and its kernel_shape, strides, dilations and group attributes, not yet checked."""
    w = np.asarray(ctx.const(1, "the weights W"), dtype=np.float32)
    if w.ndim not in (3, 4):
        ctx.fail(f"weights of shape {w.shape}: {unsupported_rank}")
    spatial = w.ndim - 2
    return (w, spatial, ctx.ints_attr("kernel_shape", list(w.shape[2:])), ctx.ints_attr("strides", [1] * spatial),
            ctx.ints_attr("dilations", [1] * spatial), ctx.int_attr("group", 1))


@converter("Conv", attrs=("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"))
def conv(ctx):
    x = ctx.tensor(0)
    w, spatial, ks, strides, dil, group = _geometry(ctx, "perfkit convolves in 1-D or 2-D (weights of rank 3 or 4)")
    if list(ks) != list(w.shape[2:]):
        ctx.fail(f"kernel_shape {ks} does not match the weights {w.shape}", malformed=True)
    if len(strides) != spatial or len(dil) != spatial or min(strides + dil) < 1 or group < 1:
        ctx.fail(f"strides {strides}, dilations {dil} and group {group} must be positive, one per spatial dim",
                 malformed=True)
    bias = np.asarray(ctx.const(2, "the bias B"), dtype=np.float32).reshape(-1) if ctx.has(2) else None
    x = to_chw(ctx, x, spatial)
    pads = conv_pads(ctx, list(x.shape[3 - spatial:]), list(w.shape[2:]), strides, dil)
    if spatial == 1:
        w, strides, dil, pads = w[:, :, None, :], [1] + strides, [1] + dil, [(0, 0)] + pads
    if any(a != b for a, b in pads):
        x = ctx.add("add_padding", x, [p[0] for p in pads], [p[1] for p in pads], part="pad").output
        pads = [(0, 0), (0, 0)]
    y = ctx.add("add_convolution", x, int(w.shape[0]), tuple(w.shape[2:]), w, bias, stride=tuple(strides),
                padding=tuple(p[0] for p in pads), dilation=tuple(dil), groups=group,
                part="conv" if reshaped_back(ctx, spatial) else None).output
    ctx.output(from_chw(ctx, y, spatial))


@converter("ConvTranspose", attrs=("auto_pad", "dilations", "group", "kernel_shape", "output_padding",
                                  "output_shape", "pads", "strides"))
def conv_transpose(ctx):
    x = ctx.tensor(0)
    w, spatial, ks, strides, dil, group = _geometry(ctx, "perfkit's transposed convolution is 1-D or 2-D")
    out_pad = ctx.ints_attr("output_padding", [0] * spatial)
    out_shape = ctx.ints_attr("output_shape", None)
    if list(ks) != list(w.shape[2:]) or any(len(v) != spatial for v in (strides, dil, out_pad)) or group < 1 or \
            min(strides + dil) < 1 or min(out_pad) < 0:
        ctx.fail(f"kernel_shape {ks}, strides {strides}, dilations {dil}, output_padding {out_pad} and group {group} "
                 f"do not fit weights {w.shape}", malformed=True)
    bias = np.asarray(ctx.const(2, "the bias B"), dtype=np.float32).reshape(-1) if ctx.has(2) else None
    x = to_chw(ctx, x, spatial)
    in_sp = list(x.shape[3 - spatial:])
    natural = [s * (n - 1) + op + (k - 1) * d + 1 for s, n, op, k, d in zip(strides, in_sp, out_pad, ks, dil)]
    auto = ctx.choice("auto_pad", "NOTSET", ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"))
    pads_attr = ctx.ints_attr("pads", None)
    if pads_attr is not None and auto in ("NOTSET", "VALID"):
        if len(pads_attr) != 2 * spatial or min(pads_attr) < 0:
            ctx.fail(f"pads {pads_attr} must be {2 * spatial} non-negative ints", malformed=True)
        pads = [(pads_attr[i], pads_attr[i + spatial]) for i in range(spatial)]
    elif auto in ("SAME_UPPER", "SAME_LOWER") or out_shape is not None:
        target = out_shape if out_shape is not None else [n * s for n, s in zip(in_sp, strides)]
        if len(target) != spatial:
            ctx.fail(f"output_shape {out_shape} must give {spatial} spatial sizes", malformed=True)
        pads = []
        for i, (nat, t) in enumerate(zip(natural, target)):
            total = nat - t
            if total < 0:
                if out_shape is not None:      # a larger output than the pads allow: extra rows at the end
                    out_pad[i] += -total
                total = 0                      # SAME with a 1-wide kernel: no negative pads (as onnxruntime)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
    else:
        pads = [(0, 0)] * spatial
    if spatial == 1:
        w, ks, strides, dil = w[:, :, None, :], [1] + ks, [1] + strides, [1] + dil
        out_pad, pads = [0] + out_pad, [(0, 0)] + pads
    y = ctx.add("add_deconvolution", x, int(w.shape[1] * group), tuple(ks), w, bias, stride=tuple(strides),
                padding=tuple(p[0] for p in pads), post_padding=tuple(p[1] for p in pads), dilation=tuple(dil),
                groups=group, output_padding=tuple(out_pad),
                part="deconv" if reshaped_back(ctx, spatial) else None).output
    ctx.output(from_chw(ctx, y, spatial))


@converter("Gemm", attrs=("alpha", "beta", "transA", "transB"))
def gemm(ctx):
    a = ctx.input(0)
    alpha, beta = ctx.float_attr("alpha", 1.0), ctx.float_attr("beta", 1.0)
    ta, tb = ctx.int_attr("transA", 0), ctx.int_attr("transB", 0)
    if not is_tensor(a) or is_tensor(ctx.input(1)) or ctx.values.rank(a) != 2:
        ctx.fail("Gemm is supported with a run-time (M, K) input A and constant weights B")
    b = np.asarray(ctx.const(1), dtype=np.float32)
    if b.ndim != 2:
        ctx.fail(f"B must be 2-D, not {b.shape}", malformed=True)
    kernel = (b if tb else b.T) * alpha
    n = kernel.shape[0]
    c = None
    if ctx.has(2):
        c = np.asarray(ctx.const(2, "C"), dtype=np.float32) * beta
    if ctx.values.lead:
        if ta:
            ctx.fail("transA=1 transposes the batch dimension away; perfkit supports transA=0 with a batch")
        bias = None
        if c is not None:
            if c.size == 1 or c.shape in ((n,), (1, n)):
                bias = np.broadcast_to(c.reshape(-1), (n,)).copy()
            else:
                ctx.fail(f"C of shape {c.shape} differs per row (per sample); supported: a scalar, ({n},) or (1, {n})")
        ctx.output(ctx.add("add_fully_connected", a, n, kernel, bias).output)
        return
    if ta:
        a = ctx.add("add_shuffle", a, first_transpose=[1, 0], part="transA").output
    kt = ctx.values.constant_tensor(ctx, kernel, label=f"{ctx.base}/B")
    y = ctx.add("add_matrix_multiply", a, kt, transpose_b=True, part=None if c is None else "matmul").output
    if c is not None:
        ct = ctx.values.constant_tensor(ctx, c, 2, label=f"{ctx.base}/C")
        y = ctx.add("add_elementwise", y, ct, "sum").output
    ctx.output(y)


@converter("MatMul")
def matmul(ctx):
    a, b = ctx.input(0), ctx.input(1)
    vals = ctx.values
    if is_tensor(a) and not is_tensor(b) and np.ndim(b) == 2 and vals.rank(a) == vals.lead + 1:
        w = np.asarray(b, dtype=np.float32)
        ctx.output(ctx.add("add_fully_connected", a, int(w.shape[1]), w.T.copy()).output)
        return
    ra, rb = vals.rank(a), vals.rank(b)
    if ra < 2 or rb < 2 or (is_tensor(a) and len(a.shape) < 2) or (is_tensor(b) and len(b.shape) < 2):
        vec_b = rb == 1 and not is_tensor(b)
        if vec_b and is_tensor(a) and len(a.shape) >= 2:
            col = vals.constant_tensor(ctx, np.asarray(b).reshape(-1, 1), label=f"{ctx.base}/B")
            y = ctx.add("add_matrix_multiply", a, col, part="matmul").output
            ctx.output(ctx.add("add_shuffle", y, reshape=list(y.shape[:-1])).output)
            return
        ctx.fail(f"MatMul of {vals.show(a)} and {vals.show(b)}: perfkit multiplies per-sample matrices (rank >= 2 "
                 "per sample), a (..., K) input by constant (K, M) weights, or a matrix by a constant vector")
    rank = max(ra, rb)
    ops = []
    for v in (a, b):
        if is_tensor(v):
            ops.append(vals.with_rank(ctx, v, rank) if vals.rank(v) < rank and len(v.shape) < 2 else v)
        else:
            c = np.asarray(v)
            if vals.lead and c.ndim >= rank:
                c = vals.per_sample_constant(ctx, c, rank)
            ops.append(vals.constant_tensor(ctx, c, label=f"{ctx.base}/{'AB'[len(ops)]}"))
    ctx.output(ctx.add("add_matrix_multiply", ops[0], ops[1]).output)


@converter("BatchNormalization", attrs=("epsilon", "momentum", "spatial", "training_mode"))
def batch_norm(ctx):
    x = ctx.tensor(0)
    if ctx.int_attr("spatial", 1) != 1:
        ctx.fail("spatial=0 (per-activation statistics) is not supported")
    if ctx.int_attr("training_mode", 0) != 0 or any(o for o in ctx.node.output[1:]):
        ctx.fail("training mode (running statistics as outputs) is not supported: export the model for inference")
    gamma, beta, mean, var = (np.asarray(ctx.const(i, n), np.float64).reshape(-1)
                              for i, n in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
    eps = ctx.float_attr("epsilon", 1e-5)
    if not np.all(var + eps > 0):
        ctx.fail("the variance plus epsilon must be positive", malformed=True)
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    axis = ctx.values.axis(ctx, 1, ctx.values.rank(x), "channel axis")
    ctx.output(ctx.add("add_scale", x, "channel", shift=shift.astype(np.float32), scale=scale.astype(np.float32),
                       channel_axis=axis).output)


def _affine(ctx, what: str, i: int, shape: tuple, rank: int):
    """Scale or bias input ``i`` as an array broadcasting to the per-sample ``shape`` (None when absent)."""
    if not ctx.has(i):
        return None
    c = np.asarray(ctx.const(i, what), np.float32)
    return ctx.values.per_sample_constant(ctx, c, rank) if c.ndim else c


@converter("InstanceNormalization", attrs=("epsilon",))
def instance_norm(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    c_axis = ctx.values.axis(ctx, 1, rank, "channel axis")
    axes = [ctx.values.axis(ctx, a, rank) for a in range(2, rank)]
    if not axes:
        ctx.fail("InstanceNormalization needs spatial dimensions", malformed=True)
    c = x.shape[c_axis]
    shape = (c,) + (1,) * (len(x.shape) - c_axis - 1)
    gamma = np.asarray(ctx.const(1, "scale"), np.float32).reshape(shape)
    beta = np.asarray(ctx.const(2, "B"), np.float32).reshape(shape)
    ctx.output(ctx.add("add_normalization", x, gamma, beta, axes, epsilon=ctx.float_attr("epsilon", 1e-5)).output)


@converter("GroupNormalization", attrs=("epsilon", "num_groups", "stash_type"), since=18)
def group_norm(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    c_axis = ctx.values.axis(ctx, 1, rank, "channel axis")
    if c_axis != 0:
        ctx.fail("GroupNormalization without a batch dimension is not supported")
    groups = ctx.int_attr("num_groups", None)
    c = x.shape[0]
    if not groups or groups < 1 or c % groups:
        ctx.fail(f"num_groups {groups} must divide the {c} channels", malformed=True)
    gamma = np.asarray(ctx.const(1, "scale"), np.float32).reshape(-1)
    beta = np.asarray(ctx.const(2, "bias"), np.float32).reshape(-1)
    if ctx.version < 21 and gamma.size == groups:            # opset 18: one scale per group
        gamma, beta = np.repeat(gamma, c // groups), np.repeat(beta, c // groups)
    shape = (c,) + (1,) * (len(x.shape) - 1)
    # perfkit's num_groups=1 means no grouping (as TensorRT); ONNX's one group spans every channel
    axes = list(range(0 if groups == 1 else 1, len(x.shape)))
    ctx.output(ctx.add("add_normalization", x, gamma.reshape(shape), beta.reshape(shape), axes,
                       epsilon=ctx.float_attr("epsilon", 1e-5), num_groups=groups).output)


@converter("LayerNormalization", attrs=("axis", "epsilon", "stash_type"), since=17)
def layer_norm(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    first = ctx.values.axis(ctx, ctx.int_attr("axis", -1), rank)
    axes = list(range(first, len(x.shape)))
    eps = ctx.float_attr("epsilon", 1e-5)
    scale = _affine(ctx, "scale", 1, tuple(x.shape), rank)
    bias = _affine(ctx, "B", 2, tuple(x.shape), rank)
    stats = any(ctx.node.output[1:])               # ONNX's optional Mean and InvStdDev outputs
    layer = ctx.add("add_normalization", x, scale, bias, axes, epsilon=eps, statistics=stats)
    for i, t in enumerate(layer.outputs):
        ctx.output(t, i)


@converter("LRN", attrs=("alpha", "beta", "bias", "size"))
def lrn(ctx):
    x = ctx.tensor(0)
    if ctx.values.axis(ctx, 1, ctx.values.rank(x), "channel axis") != 0:
        ctx.fail("LRN without a batch dimension is not supported")
    size = ctx.int_attr("size", None)
    if size is None or size < 1:
        ctx.fail("LRN needs a positive size", malformed=True)
    if size % 2 == 0:
        ctx.fail(f"LRN size {size} is even; perfkit's LRN windows are odd (centred)")
    ctx.output(ctx.add("add_lrn", x, size, alpha=ctx.float_attr("alpha", 1e-4), beta=ctx.float_attr("beta", 0.75),
                       k=ctx.float_attr("bias", 1.0)).output)


@converter("Softmax", "LogSoftmax", attrs=("axis",))
def softmax(ctx):
    x = ctx.tensor(0)
    rank = ctx.values.rank(x)
    axis = ctx.int_attr("axis", -1 if ctx.version >= 13 else 1)
    a = ctx.values.axis(ctx, axis, rank)
    shape = list(x.shape)
    coerced = ctx.version < 13 and a != len(shape) - 1      # opset < 13: softmax over the flattened dims from axis
    if coerced:
        x = ctx.add("add_shuffle", x, reshape=shape[:a] + [-1], part="flatten").output
        a = len(x.shape) - 1
    y = ctx.add("add_softmax", x, a, log=ctx.op_type == "LogSoftmax", part="softmax" if coerced else None).output
    if coerced:
        y = ctx.add("add_shuffle", y, reshape=shape).output
    ctx.output(y)
