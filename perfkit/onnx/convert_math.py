"""Element-wise operators: unary functions, activations, binary and variadic arithmetic."""
from __future__ import annotations

import numpy as np

from .registry import converter
from .values import FLOAT_MAX, is_tensor

UNARY = {"Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Reciprocal": "recip", "Abs": "abs", "Neg": "neg",
         "Erf": "erf", "Sin": "sin", "Cos": "cos", "Tan": "tan", "Sinh": "sinh", "Cosh": "cosh", "Asin": "asin",
         "Acos": "acos", "Atan": "atan", "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh", "Ceil": "ceil",
         "Floor": "floor", "Round": "round", "Sign": "sign"}
BINARY = {"Add": "sum", "Sub": "sub", "Mul": "prod", "Div": "div", "Pow": "pow", "Max": "max", "Min": "min",
          "Sum": "sum", "Mean": "sum"}


@converter(*UNARY)
def unary(ctx):
    ctx.output(ctx.add("add_unary", ctx.tensor(0), UNARY[ctx.op_type]).output)


def _activation(ctx, kind, alpha=None, beta=None):
    ctx.output(ctx.add("add_activation", ctx.tensor(0), kind, alpha=alpha, beta=beta).output)


@converter("Relu", "Sigmoid", "Tanh", "Softsign")
def simple_activation(ctx):
    _activation(ctx, {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softsign": "softsign"}[ctx.op_type])


@converter("LeakyRelu", attrs=("alpha",))
def leaky_relu(ctx):
    _activation(ctx, "leaky_relu", ctx.float_attr("alpha", 0.01))


@converter("Elu", attrs=("alpha",))
def elu(ctx):
    _activation(ctx, "elu", ctx.float_attr("alpha", 1.0))


@converter("Selu", attrs=("alpha", "gamma"))
def selu(ctx):
    _activation(ctx, "selu", ctx.float_attr("alpha", 1.67326319217681884765625),
                ctx.float_attr("gamma", 1.05070102214813232421875))


@converter("Softplus")
def softplus(ctx):
    _activation(ctx, "softplus", 1.0, 1.0)


@converter("HardSigmoid", attrs=("alpha", "beta"))
def hard_sigmoid(ctx):
    _activation(ctx, "hard_sigmoid", ctx.float_attr("alpha", 0.2), ctx.float_attr("beta", 0.5))


@converter("HardSwish")
def hard_swish(ctx):
    _activation(ctx, "hard_swish", 1.0 / 6.0, 0.5)


@converter("ThresholdedRelu", attrs=("alpha",))
def thresholded_relu(ctx):
    _activation(ctx, "thresholded_relu", ctx.float_attr("alpha", 1.0))


@converter("Celu", attrs=("alpha",))
def celu(ctx):
    _activation(ctx, "celu", ctx.float_attr("alpha", 1.0))


@converter("Mish")
def mish(ctx):
    _activation(ctx, "mish")


@converter("Gelu", attrs=("approximate",), since=20)
def gelu(ctx):
    kind = ctx.choice("approximate", "none", ("none", "tanh"))
    _activation(ctx, "gelu" if kind == "none" else "gelu_tanh")


@converter("Clip", attrs=("min", "max"))
def clip(ctx):
    if ctx.version < 11:
        lo, hi = ctx.float_attr("min", -FLOAT_MAX), ctx.float_attr("max", FLOAT_MAX)
    else:
        bounds = []
        for i, default in ((1, -FLOAT_MAX), (2, FLOAT_MAX)):
            if ctx.has(i):
                v = np.asarray(ctx.const(i, ("min", "max")[i - 1]))
                if v.size != 1:
                    ctx.fail(f"Clip's {('min', 'max')[i - 1]} must be a scalar, not shape {v.shape}", malformed=True)
                bounds.append(float(np.clip(v.reshape(-1)[0], -FLOAT_MAX, FLOAT_MAX)))
            else:
                bounds.append(default)
        lo, hi = bounds
    x = ctx.tensor(0)
    if lo > hi:          # ONNX: every value becomes max
        lo = hi
    if x.dtype != "int32":
        _activation(ctx, "clip", lo, hi)
        return
    info = np.iinfo(np.int32)             # integers: max with the low bound, then min with the high one
    for op, bound in (("max", lo), ("min", hi)):
        b = int(np.clip(bound, info.min, info.max))
        if (op == "max" and b > info.min) or (op == "min" and b < info.max):
            t = ctx.values.constant_tensor(ctx, np.full((1,) * len(x.shape), b, np.int32), label=f"{ctx.base}/{op}")
            x = ctx.add("add_elementwise", x, t, op, part=op).output
    ctx.output(x)


@converter("PRelu")
def prelu(ctx):
    x = ctx.tensor(0)
    slope = ctx.input(1)
    if not is_tensor(slope):
        c = np.asarray(slope, dtype=np.float32)
        if c.size and np.all(c == c.reshape(-1)[0]):
            _activation(ctx, "leaky_relu", float(c.reshape(-1)[0]))
            return
    x, slope = ctx.values.operands(ctx, [x, slope])
    ctx.output(ctx.add("add_parametric_relu", x, slope).output)


SCALE_OPS = ("Add", "Sub", "Mul", "Div")


def _as_scale(ctx, a, b):
    """A float run-time tensor with a constant that is one value or one per channel (ONNX axis 1 of an
    (N, C, ...) tensor), combined by + - * /: a Scale layer (``x * scale + shift``), which the builder folds into a
    preceding convolution or a following activation, as TensorRT's parser makes such nodes IScaleLayers.
    ``None`` when the pair does not fit (the caller adds an element-wise layer)."""
    if is_tensor(a) == is_tensor(b):
        return None
    x, c, const_first = (a, b, False) if is_tensor(a) else (b, a, True)
    if "float" not in x.dtype:
        return None
    c = np.asarray(c)
    if c.dtype.kind != "f" or not np.all(np.isfinite(c)) or np.ndim(c) > ctx.values.rank(x):
        return None
    try:
        ps = ctx.values.per_sample_constant(ctx, c, ctx.values.rank(x)).astype(np.float64)
    except Exception:
        return None
    shape = tuple(x.shape)
    if np.broadcast_shapes(ps.shape, shape) != shape:
        return None                                  # the constant would enlarge the tensor
    op = ctx.op_type
    if op == "Div" and (const_first or np.any(ps == 0)):
        return None
    producer = ctx.imp.layer_types.get(x.producer, "") if x.producer else ""
    if producer in ("fully_connected", "matrix_multiply", "mlp"):
        return None                                  # a bias: the builder fuses the element-wise sum instead
    if ps.size == 1:
        mode, v, axis = "uniform", ps.reshape(1), 0
    else:
        varying = [i for i, d in enumerate(ps.shape) if d != 1]
        if ps.ndim != len(shape) or len(varying) != 1 or varying[0] != 0 or len(shape) < 2:
            return None                              # per channel: ONNX axis 1 of (N, C, ...) only
        mode, v, axis = "channel", ps.reshape(-1), 0
    v = v.astype(np.float32)
    if op == "Add":
        kw = {"shift": v}
    elif op == "Mul":
        kw = {"scale": v}
    elif op == "Div":
        kw = {"scale": (1.0 / v.astype(np.float64)).astype(np.float32)}
    elif const_first:                                # c - x
        kw = {"scale": -np.ones_like(v), "shift": v}
    else:                                            # x - c
        kw = {"shift": -v}
    if not all(np.all(np.isfinite(w)) for w in kw.values()):
        return None
    return ctx.add("add_scale", x, mode, channel_axis=axis, **kw).output


@converter(*BINARY)
def binary(ctx):
    ins = [ctx.input(i) for i in range(ctx.n_inputs)]
    count = len(ins)
    op = BINARY[ctx.op_type]
    if len(ins) == 1:
        if ctx.op_type not in ("Sum", "Mean", "Max", "Min"):
            ctx.fail(f"{ctx.op_type} takes two inputs", malformed=True)
        ctx.output(ins[0])
        return
    if len(ins) > 2 and ctx.op_type not in ("Sum", "Mean", "Max", "Min"):
        ctx.fail(f"{ctx.op_type} takes two inputs, got {len(ins)}", malformed=True)
    if len(ins) == 2 and ctx.op_type in SCALE_OPS:
        y = _as_scale(ctx, ins[0], ins[1])
        if y is not None:
            ctx.output(y)
            return
    consts = [v for v in ins if not is_tensor(v)]
    if len(consts) > 1:               # constants combined at import (Sum/Max/Min of several)
        from functools import reduce
        fn = {"sum": np.add, "max": np.maximum, "min": np.minimum}[op]
        ins = [v for v in ins if is_tensor(v)] + [reduce(fn, consts)]
    ops = ctx.values.operands(ctx, ins)
    if op in ("div", "pow") and all(t.dtype == "int32" for t in ops):
        # integers: computed in float32 and truncated toward zero as ONNX does (exact below 2**24)
        a, b = (ctx.add("add_identity", t, dtype="float32", part=f"float{i}").output for i, t in enumerate(ops))
        y = ctx.add("add_elementwise", a, b, op, part=op).output
        ctx.output(ctx.add("add_identity", y, dtype="int32").output)
        return
    acc = ops[0]
    last = len(ops) - 1
    for i in range(1, len(ops)):
        final = i == last and ctx.op_type != "Mean"
        acc = ctx.add("add_elementwise", acc, ops[i], op, part=None if final else f"{op}{i}").output
    if ctx.op_type == "Mean":
        acc = ctx.add("add_scale", acc, "uniform", scale=np.array([1.0 / count], np.float32)).output
    ctx.output(acc)


COMPARE = {"Equal": "equal", "Less": "less", "Greater": "greater", "LessOrEqual": "less_equal",
           "GreaterOrEqual": "greater_equal", "And": "and", "Or": "or", "Xor": "xor"}


@converter(*COMPARE)
def compare(ctx):
    """Comparisons and logic: int32 0/1 tensors (booleans are stored as int32)."""
    a, b = ctx.values.operands(ctx, [ctx.input(0), ctx.input(1)])
    ctx.output(ctx.add("add_elementwise", a, b, COMPARE[ctx.op_type]).output)


@converter("Not")
def not_(ctx):
    x = ctx.tensor(0)
    zero = ctx.values.constant_tensor(ctx, np.zeros((1,) * len(x.shape), np.int32), label=f"{ctx.base}/zero")
    ctx.output(ctx.add("add_elementwise", x, zero, "equal").output)


@converter("Mod", attrs=("fmod",))
def mod(ctx):
    a, b = ctx.values.operands(ctx, [ctx.input(0), ctx.input(1)])
    fmod = ctx.int_attr("fmod", 0)
    if not fmod and "float" in a.dtype + b.dtype:
        ctx.fail("Mod with fmod=0 is defined for integers; floats need fmod=1", malformed=True)
    ctx.output(ctx.add("add_elementwise", a, b, "fmod" if fmod else "mod").output)
