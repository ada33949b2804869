"""Every op against its independent float64 NumPy oracle (tests/oracles.py), on each device, in every
precision with that precision's elementwise tolerance; engines are built with the precision forced
(strict types), and each test checks the layers really ran in it."""
import numpy as np
import pytest

import perfkit as pk
from device_helpers import to_host
from onnx_op_check import PRECISIONS, build      # shared with the ONNX layers' tests
from oracles import assert_close, reference_forward


def run(net, inputs, device, precision="fp32", batch=None):
    b = batch or next(iter(inputs.values())).shape[0]
    out = build(net, device, precision, b).create_execution_context().execute(inputs)
    return {k: to_host(v) for k, v in out.items()}


def stored_in(values, precision):
    """True when every value is exactly representable in ``precision``'s storage format: outputs of
    a layer stored in fp16/bf16 are, whatever reformat widened them afterwards."""
    import ml_dtypes
    dtype = {"fp32": np.float32, "fp16": np.float16, "bf16": ml_dtypes.bfloat16}[precision]
    v = np.asarray(values, np.float32)
    return bool(np.array_equal(v.astype(dtype).astype(np.float32), v, equal_nan=True))


def term_scale(net, inputs):
    """Each output element's sum of |terms| for a network of summing layers, else 1 (see oracles)."""
    try:
        return reference_forward(net, inputs, absolute=True)
    except NotImplementedError:
        return {t.name: 1.0 for t in net.outputs}


def check(net, inputs, device, precisions=PRECISIONS):
    ref = reference_forward(net, inputs)
    scale = term_scale(net, inputs)
    for precision in precisions:
        got = run(net, inputs, device, precision)
        for name in ref:
            assert_close(got[name], ref[name], precision, f"{net.name}/{name}", scale=scale[name])
            if got[name].dtype.kind == "f":
                assert stored_in(got[name], precision), f"{net.name}/{name}: not stored in {precision}"


def single(rng, shape, batch=3, low=-1.0, high=1.0):
    net = pk.Network("op")
    x = net.add_input("x", shape)
    return net, x, {"x": rng.uniform(low, high, (batch,) + tuple(shape)).astype(np.float32)}


@pytest.mark.parametrize("bias", [True, False])
def test_fully_connected(device, rng, bias):
    net, x, inp = single(rng, (3, 4, 5))
    fc = net.add_fully_connected(x, 7, rng.standard_normal((7, 60)), rng.standard_normal(7) if bias else None)
    net.mark_output(fc.output)
    check(net, inp, device)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matrix_multiply_transposes(device, rng, ta, tb):
    net = pk.Network("mm")
    a = net.add_input("a", (4, 6) if ta else (6, 4))
    b = net.add_input("b", (5, 4) if tb else (4, 5))
    net.mark_output(net.add_matrix_multiply(a, b, ta, tb).output)
    inp = {"a": rng.standard_normal((2,) + a.shape).astype(np.float32),
           "b": rng.standard_normal((2,) + b.shape).astype(np.float32)}
    check(net, inp, device)


def test_matrix_multiply_constant_and_broadcast(device, rng):
    net = pk.Network("mmc")
    a = net.add_input("a", (3, 4, 6))
    w = net.add_constant(rng.standard_normal((6, 5)).astype(np.float32))
    y = net.add_matrix_multiply(a, w.output)
    assert y.output.shape == (3, 4, 5)
    net.mark_output(y.output)
    check(net, {"a": rng.standard_normal((2, 3, 4, 6)).astype(np.float32)}, device)


@pytest.mark.parametrize("k,stride,pad,dil,groups", [
    (3, 1, 1, 1, 1), (3, 2, 0, 1, 1), (1, 1, 0, 1, 1), (3, 2, 1, 2, 1), ((3, 2), (2, 1), (1, 0), 1, 1),
    (3, 1, 1, 1, 2), (3, 1, 1, 1, 4), (5, 3, 2, 1, 1)])
def test_convolution(device, rng, k, stride, pad, dil, groups):
    net, x, inp = single(rng, (4, 9, 8), batch=2)
    kh, kw = (k, k) if isinstance(k, int) else k
    conv = net.add_convolution(x, 8, k, rng.standard_normal((8, 4 // groups, kh, kw)) * 0.3,
                               rng.standard_normal(8), stride=stride, padding=pad, dilation=dil, groups=groups)
    net.mark_output(conv.output)
    check(net, inp, device)


ACTS = ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "selu", "gelu", "gelu_tanh", "clip", "softplus",
        "softsign", "hard_sigmoid", "scaled_tanh"]


@pytest.mark.parametrize("kind", ACTS)
def test_activation(device, rng, kind):
    net, x, inp = single(rng, (5, 6), low=-4, high=4)
    net.mark_output(net.add_activation(x, kind, alpha=0.3 if kind in ("leaky_relu", "elu") else None).output)
    check(net, inp, device)


@pytest.mark.parametrize("mode", ["uniform", "channel", "elementwise"])
@pytest.mark.parametrize("with_power", [False, True])
def test_scale(device, rng, mode, with_power):
    net, x, inp = single(rng, (3, 4, 2), low=0.5, high=2.0)
    shape = {"uniform": (1,), "channel": (3,), "elementwise": (3, 4, 2)}[mode]
    power = rng.uniform(0.5, 2, shape) if with_power else None
    net.mark_output(net.add_scale(x, mode, shift=rng.uniform(0, 1, shape), scale=rng.uniform(0.5, 1.5, shape),
                                  power=power).output)
    check(net, inp, device)


def test_scale_channel_axis(device, rng):
    net, x, inp = single(rng, (3, 4, 2))
    net.mark_output(net.add_scale(x, "channel", scale=np.arange(1, 5), channel_axis=1).output)
    check(net, inp, device)


@pytest.mark.parametrize("op", ["sum", "prod", "sub", "div", "max", "min", "pow"])
@pytest.mark.parametrize("bshape", [(3, 4, 5), (1, 4, 1), (3, 1, 5)])
def test_elementwise_broadcasting(device, rng, op, bshape):
    net = pk.Network("ew")
    a = net.add_input("a", (3, 4, 5))
    b = net.add_input("b", bshape)
    net.mark_output(net.add_elementwise(a, b, op).output)
    inp = {"a": rng.uniform(0.5, 2, (2, 3, 4, 5)).astype(np.float32),
           "b": rng.uniform(0.5, 2, (2,) + bshape).astype(np.float32)}
    check(net, inp, device)


def test_elementwise_with_constant(device, rng):
    net, x, inp = single(rng, (3, 4))
    c = net.add_constant(rng.standard_normal((1, 4)).astype(np.float32))
    net.mark_output(net.add_elementwise(x, c.output, "sum").output)
    check(net, inp, device)


UNARY_DOMAIN = {"log": (0.1, 3), "sqrt": (0.1, 3), "recip": (0.5, 3), "asin": (-0.9, 0.9), "acos": (-0.9, 0.9),
                "acosh": (1.1, 3), "atanh": (-0.9, 0.9)}


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "recip", "abs", "neg", "sin", "cos", "tan", "sinh", "cosh",
                                "asin", "acos", "atan", "asinh", "acosh", "atanh", "ceil", "floor", "sign", "erf"])
def test_unary(device, rng, op):
    lo, hi = UNARY_DOMAIN.get(op, (-1.2, 1.2))
    net, x, inp = single(rng, (4, 5), low=lo, high=hi)
    net.mark_output(net.add_unary(x, op).output)
    check(net, inp, device)


@pytest.mark.parametrize("op", ["sum", "prod", "max", "min", "avg"])
@pytest.mark.parametrize("axes,keep", [((0,), False), ((1, 2), True), ((-1,), False), ((-1, 0), True), ((0, 1, 2), False)])
def test_reduce(device, rng, op, axes, keep):
    net, x, inp = single(rng, (3, 4, 5), low=0.8, high=1.2)
    net.mark_output(net.add_reduce(x, op, axes, keep).output)
    check(net, inp, device)


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("window,stride,pad,excl", [(2, 2, 0, True), (3, 1, 1, True), (3, 2, 1, False), ((3, 2), (2, 1), (1, 0), True)])
def test_pooling(device, rng, pool, window, stride, pad, excl):
    net, x, inp = single(rng, (3, 7, 6))
    net.mark_output(net.add_pooling(x, pool, window, stride, pad, excl).output)
    check(net, inp, device)


@pytest.mark.parametrize("first,reshape,second", [((1, 0, 2), None, None), (None, (0, -1), None),
                                                  (None, (12, 5), (1, 0)), ((2, 0, 1), (5, 0, 4), (0, 2, 1)),
                                                  (None, (-1,), None)])
def test_shuffle(device, rng, first, reshape, second):
    net, x, inp = single(rng, (3, 4, 5))
    net.mark_output(net.add_shuffle(x, first, reshape, second).output)
    check(net, inp, device)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenation(device, rng, axis):
    net = pk.Network("cat")
    shapes = [(2, 3, 4), (2, 3, 4)]
    shapes[1] = tuple(5 if i == axis % 3 else d for i, d in enumerate(shapes[1]))
    a = net.add_input("a", shapes[0])
    b = net.add_input("b", shapes[1])
    c = net.add_constant(np.ones(shapes[0], np.float32))
    net.mark_output(net.add_concatenation([a, b, c.output], axis).output)
    inp = {"a": rng.standard_normal((2,) + shapes[0]).astype(np.float32),
           "b": rng.standard_normal((2,) + shapes[1]).astype(np.float32)}
    check(net, inp, device)


@pytest.mark.parametrize("axis", [0, 1])
def test_gather_constant_indices(device, rng, axis):
    net, x, inp = single(rng, (6, 5))
    idx = net.add_constant(np.array([[4, 0], [1, 1]], np.int32))
    net.mark_output(net.add_gather(x, idx.output, axis).output)
    check(net, inp, device)


def test_gather_embedding_lookup(device, rng):
    net = pk.Network("emb")
    ids = net.add_input("ids", (7,), "int32")
    table = net.add_constant(rng.standard_normal((16, 4)).astype(np.float32))
    net.mark_output(net.add_gather(table.output, ids, 0).output)
    check(net, {"ids": rng.integers(0, 16, (3, 7)).astype(np.int32)}, device)


def test_gather_per_sample(device, rng):
    net = pk.Network("g2")
    x = net.add_input("x", (6, 3))
    ids = net.add_input("ids", (4,), "int32")
    net.mark_output(net.add_gather(x, ids, 0).output)
    check(net, {"x": rng.standard_normal((2, 6, 3)).astype(np.float32),
                "ids": rng.integers(0, 6, (2, 4)).astype(np.int32)}, device)


@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("axis,k", [(-1, 3), (0, 2)])
def test_topk(device, rng, op, axis, k):
    net = pk.Network("topk")
    x = net.add_input("x", (5, 8))
    layer = net.add_topk(x, op, k, axis)
    net.mark_output(layer.get_output(0))
    net.mark_output(layer.get_output(1))
    vals = rng.permutation(2 * 5 * 8).reshape(2, 5, 8).astype(np.float32) / 7.0   # distinct: no ties
    ref = reference_forward(net, {"x": vals})
    values, indices = layer.get_output(0).name, layer.get_output(1).name
    for precision in PRECISIONS:
        got = run(net, {"x": vals}, device, precision)
        assert_close(got[values], ref[values], precision, f"topk/{precision}")
        assert stored_in(got[values], precision)
        # k/7 for k < 80 stays distinct when rounded to bf16 (spacing 1/16 below 16), so the order holds
        np.testing.assert_array_equal(got[indices], ref[indices])
        assert got[indices].dtype == np.int32


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax(device, rng, axis):
    net, x, inp = single(rng, (3, 4, 5), low=-5, high=5)
    net.mark_output(net.add_softmax(x, axis).output)
    check(net, inp, device)


@pytest.mark.parametrize("n", [300, 10000])
def test_softmax_of_long_rows(device, rng, n):
    # on CUDA one block per row: 256 threads up to 8192 values, 1024 beyond (ops/cuda_kernels.py)
    net, x, inp = single(rng, (2, n), low=-5, high=5)
    net.mark_output(net.add_softmax(x, -1).output)
    check(net, inp, device)


@pytest.mark.parametrize("window", [1, 3, 5])
def test_lrn(device, rng, window):
    net, x, inp = single(rng, (6, 3, 3))
    net.mark_output(net.add_lrn(x, window, alpha=1e-2, beta=0.75, k=2.0).output)
    check(net, inp, device)


@pytest.mark.parametrize("pre,post", [((1, 2), (0, 1)), ((0, 0), (2, 2)), ((-1, 1), (1, -2))])
def test_padding(device, rng, pre, post):
    net, x, inp = single(rng, (2, 5, 6))
    net.mark_output(net.add_padding(x, pre, post).output)
    check(net, inp, device)


def test_identity_and_constant_folding(device, rng):
    net, x, inp = single(rng, (4,))
    c = net.add_constant(np.arange(4, dtype=np.float32))
    c2 = net.add_unary(c.output, "exp")         # constant-only: folded at build time
    y = net.add_elementwise(net.add_identity(x).output, c2.output, "prod")
    net.mark_output(y.output)
    check(net, inp, device)
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=3))
    folded = eng.build_log.query("phase == 'constant_folding'")
    assert c2.name in folded["matched"].iloc[0]
    assert c2.name not in list(eng.layers["layer"])
