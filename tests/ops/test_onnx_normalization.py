"""The normalization layer as ONNX's LayerNormalization, InstanceNormalization and GroupNormalization,
against float64 NumPy (on the inputs and weights as each precision stores them) on every device."""
import numpy as np
import pytest

import perfkit as pk
from onnx_op_check import check, rounded


def normalize(x, axes, eps, scale, bias, groups=1):
    """float64 oracle; ``x`` has the batch axis, ``axes`` are per-sample."""
    b = x.shape[0]
    axes = [a % (x.ndim - 1) for a in axes]
    if groups > 1:
        xs = x.reshape((b, groups, -1) + x.shape[2:])
        red = (2,) + tuple(a + 2 for a in axes)
    else:
        xs, red = x, tuple(a + 1 for a in axes)
    mean = xs.mean(axis=red, keepdims=True)
    var = ((xs - mean) ** 2).mean(axis=red, keepdims=True)
    y = ((xs - mean) / np.sqrt(var + eps)).reshape(x.shape)
    return y * (1 if scale is None else scale) + (0 if bias is None else bias)


CASES = {  # name: (input shape, axes, scale/bias shape, groups)
    "layer_norm_last": ((4, 6), [-1], (6,), 1),
    "layer_norm_last_two": ((3, 4, 5), [1, 2], (4, 5), 1),
    "layer_norm_all": ((3, 4, 5), [0, 1, 2], (3, 4, 5), 1),
    "instance_norm": ((3, 4, 5), [1, 2], (3, 1, 1), 1),
    "group_norm": ((6, 3, 5), [1, 2], (6, 1, 1), 2),
    "group_norm_of_pairs": ((6, 4), [1], (6, 1), 3),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("with_bias", [True, False])
def test_normalization(device, rng, case, with_bias):
    shape, axes, wshape, groups = CASES[case]
    net = pk.Network(case)
    x = net.add_input("x", shape)
    X = (rng.standard_normal((2,) + shape) * 3 + 1.5).astype(np.float32)     # offset: the mean matters
    S = rng.uniform(0.5, 1.5, wshape).astype(np.float32)
    B = rng.uniform(-1, 1, wshape).astype(np.float32) if with_bias else None
    y = net.add_normalization(x, S, B, axes, epsilon=1e-3, num_groups=groups)
    net.mark_output(y.output)

    def want(p):
        return {y.output.name: normalize(rounded(X, p), axes, 1e-3, rounded(S, p),
                                         None if B is None else rounded(B, p), groups)}
    check(net, {"x": X}, want, device)


def test_normalization_without_weights_and_epsilon_matters(device, rng):
    net = pk.Network("plain")
    x = net.add_input("x", (2, 8))
    y = net.add_normalization(x, None, None, -1, epsilon=0.5)
    net.mark_output(y.output)
    X = rng.standard_normal((3, 2, 8)).astype(np.float32) * 0.5
    check(net, {"x": X}, lambda p: {y.output.name: normalize(rounded(X, p), [1], 0.5, None, None)}, device)


@pytest.mark.parametrize("kwargs,match", [
    ({"axes": [0], "num_groups": 2}, "split the channel axis"),
    ({"axes": [1], "num_groups": 3}, "does not divide"),
    ({"axes": [1, -1]}, "same axis twice"),
    ({"axes": [2]}, "out of range"),
    ({"axes": []}, "non-empty"),
    ({"axes": [1], "epsilon": 0.0}, "positive finite"),
    ({"axes": [1], "scale": np.ones(3)}, "does not broadcast"),
    ({"axes": [1], "bias": np.ones((2, 4, 5))}, "does not broadcast"),
])
def test_normalization_refuses_bad_parameters(kwargs, match):
    net = pk.Network("bad")
    x = net.add_input("x", (4, 5))
    kw = {"scale": None, "bias": None, **kwargs}
    with pytest.raises(pk.PerfkitError, match=match):
        net.add_normalization(x, **kw)
    assert not net.layers


def test_normalization_cost_and_workspace():
    net = pk.Network("cost")
    x = net.add_input("x", (4, 8, 8))
    layer = net.add_normalization(x, np.ones((4, 1, 1)), np.zeros((4, 1, 1)), [1, 2])
    from perfkit.ops import get_op
    op = get_op("normalization")
    spec = x.spec
    cost = op.cost(layer.params, [spec], [spec], layer.weights)
    assert cost.flops >= 6 * spec.size and cost.bytes > 2 * spec.nbytes
    # float32: a squares array and the per-channel statistics; fp16 adds the float32 result and weights
    ws32 = op.workspace(layer.params, [spec], [spec], 2)
    half = pk.ops.TensorSpec(spec.shape, "float16")
    assert 2 * 4 * spec.size <= ws32 < op.workspace(layer.params, [half], [half], 2)


@pytest.mark.parametrize("shape,axes", [((4, 6), [-1]), ((3, 4, 5), [1, 2]), ((3, 4, 5), [0, 1, 2])])
def test_statistics_outputs_match_onnx_layer_normalization(device, rng, shape, axes):
    """Mean and InvStdDev as ONNX's LayerNormalization outputs them (1-sized on the normalised axes)."""
    net = pk.Network("stats")
    x = net.add_input("x", shape)
    S = rng.uniform(0.5, 1.5, shape[axes[0]:]).astype(np.float32)          # layer norm: the normalised dims
    layer = net.add_normalization(x, S, None, axes, epsilon=1e-2, statistics=True)
    y, mean, inv = layer.outputs
    assert mean.shape == inv.shape == tuple(1 if i in [a % len(shape) for a in axes] else d
                                            for i, d in enumerate(shape))
    for t in layer.outputs:
        net.mark_output(t)
    X = (rng.standard_normal((2,) + shape) * 2 + 1).astype(np.float32)

    def want(p):
        v = rounded(X, p)
        red = tuple(a % len(shape) + 1 for a in axes)
        mu = v.mean(axis=red, keepdims=True)
        istd = 1 / np.sqrt(((v - mu) ** 2).mean(axis=red, keepdims=True) + 1e-2)
        return {y.name: (v - mu) * istd * rounded(S, p), mean.name: mu, inv.name: istd}
    check(net, {"x": X}, want, device)


def test_statistics_need_a_single_group():
    net = pk.Network("bad")
    x = net.add_input("x", (4, 5))
    with pytest.raises(pk.PerfkitError, match="num_groups > 1"):
        net.add_normalization(x, None, None, [1], num_groups=2, statistics=True)
    with pytest.raises(pk.PerfkitError, match="True or False"):
        net.add_normalization(x, None, None, [1], statistics=1)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_onnx_group_normalization_mapping(rng, groups):
    """ONNX GroupNormalization (opset 21, per-channel scale) is num_groups=G over axes 1..rank-1 for G > 1,
    and, with one group, axes 0..rank-1 (num_groups=1 means no grouping, as in TensorRT)."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    X = (rng.standard_normal((2, 6, 3, 4)) * 2 + 0.5).astype(np.float32)
    S, B = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=groups, epsilon=1e-3)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, X.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(S, "s"), numpy_helper.from_array(B, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    want = ReferenceEvaluator(model).run(None, {"x": X})[0]
    net = pk.Network("gn")
    x = net.add_input("x", (6, 3, 4))
    axes = [0, 1, 2] if groups == 1 else [1, 2]
    y = net.add_normalization(x, S.reshape(6, 1, 1), B.reshape(6, 1, 1), axes, epsilon=1e-3, num_groups=groups)
    net.mark_output(y.output)
    got = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2)).create_execution_context().execute({"x": X})
    np.testing.assert_allclose(got[y.output.name], want, rtol=1e-4, atol=1e-4)
