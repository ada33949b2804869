"""The activations ONNX adds (HardSwish, ThresholdedRelu, Celu, Mish), PRelu with a per-channel or
per-sample slope and LogSoftmax, against float64 NumPy on every device and precision."""
import numpy as np
import pytest

import perfkit as pk
from onnx_op_check import check, rounded, run
from oracles import assert_close

NEW = {
    "hard_swish": lambda x, a, b: x * np.clip(a * x + b, 0, 1),
    "thresholded_relu": lambda x, a, b: np.where(x > a, x, 0.0),
    "celu": lambda x, a, b: np.maximum(x, 0) + np.minimum(0, a * (np.exp(x / a) - 1)),
    "mish": lambda x, a, b: x * np.tanh(np.log1p(np.exp(x))),
}
DEFAULTS = {"hard_swish": (1 / 6, 0.5), "thresholded_relu": (1.0, 0.0), "celu": (1.0, 0.0), "mish": (0.0, 0.0)}


def one_input(rng, shape, low=-5.0, high=5.0, batch=3):
    net = pk.Network("op")
    x = net.add_input("x", shape)
    return net, x, rng.uniform(low, high, (batch,) + tuple(shape)).astype(np.float32)


@pytest.mark.parametrize("kind", list(NEW))
@pytest.mark.parametrize("alpha", [None, 0.7])
def test_new_activations(device, rng, kind, alpha):
    net, x, X = one_input(rng, (4, 6))
    y = net.add_activation(x, kind, alpha=alpha)
    net.mark_output(y.output)
    a, b = DEFAULTS[kind]
    a = a if alpha is None else alpha
    # the oracle reads the input as the layer stores it: thresholded_relu jumps at alpha
    check(net, {"x": X}, lambda p: {y.output.name: NEW[kind](rounded(X, p), a, b)}, device)


@pytest.mark.parametrize("kind", ["hard_swish", "mish"])
def test_new_activations_fuse_after_a_fully_connected_layer(device, rng, kind):
    net, x, X = one_input(rng, (8,), -1, 1)
    w = rng.standard_normal((5, 8))
    y = net.add_activation(net.add_fully_connected(x, 5, w).output, kind)
    net.mark_output(y.output)
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=3))
    got = eng.create_execution_context().execute({"x": X})[y.output.name]
    assert list(eng.layers["type"]) == ["mlp"], eng.layers[["layer", "type"]]     # one fused layer
    a, b = DEFAULTS[kind]
    assert_close(np.asarray(got), NEW[kind](X.astype(np.float64) @ w.T, a, b), "fp32", kind, scale=8.0)


def test_celu_refuses_a_non_positive_alpha():
    net = pk.Network("bad")
    x = net.add_input("x", (3,))
    with pytest.raises(pk.PerfkitError, match="alpha > 0"):
        net.add_activation(x, "celu", alpha=0.0)


@pytest.mark.parametrize("slope_shape,constant", [((3, 1, 1), True), ((1, 1, 1), True), ((3, 4, 5), True),
                                                  ((3, 1, 5), False), ((5,), True), ((4, 1), True)])
def test_parametric_relu(device, rng, slope_shape, constant):
    net, x, X = one_input(rng, (3, 4, 5), -2, 2, batch=2)
    S = rng.uniform(-0.5, 0.5, slope_shape if constant else (2,) + slope_shape).astype(np.float32)
    slope = net.add_constant(S).output if constant else net.add_input("s", slope_shape)
    y = net.add_parametric_relu(x, slope)
    net.mark_output(y.output)
    inputs = {"x": X} if constant else {"x": X, "s": S}
    check(net, inputs, {y.output.name: np.where(X >= 0, X, S.astype(np.float64) * X)}, device)


def test_parametric_relu_refuses_a_slope_that_enlarges_the_input():
    net = pk.Network("bad")
    x = net.add_input("x", (3, 1))
    s = net.add_constant(np.ones((3, 4), np.float32))
    with pytest.raises(pk.PerfkitError, match="must broadcast to the input"):
        net.add_parametric_relu(x, s.output)
    with pytest.raises(pk.PerfkitError, match="different ranks"):      # a per-sample slope keeps the rank
        net.add_parametric_relu(x, net.add_input("s", (1,)))
    i = net.add_input("i", (3, 1), "int32")
    with pytest.raises(pk.PerfkitError, match="float input and slope"):
        net.add_parametric_relu(i, i)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_log_softmax(device, rng, axis):
    net, x, X = one_input(rng, (3, 4, 5), -30, 30, batch=2)     # wide: exp alone would overflow fp16
    y = net.add_softmax(x, axis, log=True)
    net.mark_output(y.output)
    ax = axis % 3 + 1

    def want(p):
        v = rounded(X, p)
        m = v.max(axis=ax, keepdims=True)
        return {y.output.name: v - m - np.log(np.exp(v - m).sum(axis=ax, keepdims=True))}
    # the result's magnitude reaches ~60: a value's error scales with the inputs it is a difference of
    check(net, {"x": X}, want, device, scale=np.abs(want("fp32")[y.output.name]) + 1)


def test_log_softmax_matches_log_of_softmax_and_costs_more(rng):
    net, x, X = one_input(rng, (6,), -3, 3)
    ls = net.add_softmax(x, 0, log=True)
    s = net.add_softmax(x, 0)
    net.mark_output(ls.output)
    net.mark_output(s.output)
    got = run(net, {"x": X}, pk.get_device("cpu"))
    np.testing.assert_allclose(got[ls.output.name], np.log(got[s.output.name]), rtol=1e-5, atol=1e-6)
    from perfkit.ops import get_op
    op = get_op("softmax")
    costs = [op.cost(layer.params, [x.spec], [layer.output.spec], {}).flops for layer in (ls, s)]
    assert costs[0] > costs[1]
    with pytest.raises(pk.PerfkitError, match="log must be True"):
        net.add_softmax(x, 0, log="yes")
