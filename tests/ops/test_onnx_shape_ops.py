"""Slice, Expand and Select (Where), against NumPy on every device and precision:
layers that only move values, so the results must match bit for bit."""
import numpy as np
import pytest

import perfkit as pk
from onnx_op_check import check

BIG = 2 ** 63 - 1


def one_input(rng, shape, batch=2):
    net = pk.Network("op")
    x = net.add_input("x", shape)
    return net, x, rng.standard_normal((batch,) + tuple(shape)).astype(np.float32)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], None, None), ([0, -3], [BIG, -1], [0, 2], None), ([-1], [-BIG], [1], [-1]),
    ([4, 1], [0, 6], [-1, 1], [-2, 3]), ([-100], [100], [2], [2]), ([3], [-6], [1], [-2]),
    ([5], [2], [2], [-1]), ([0, 0, 0], [1, 1, 1], None, None)])
def test_slice_matches_python_slicing(device, rng, starts, ends, axes, steps):
    net, x, X = one_input(rng, (3, 5, 6))
    y = net.add_slice(x, starts, ends, axes, steps)
    net.mark_output(y.output)
    index = [slice(None)] * 4
    for i, (s, e) in enumerate(zip(starts, ends)):    # Python clamps exactly as ONNX says
        index[1 + (axes[i] if axes else i) % 3] = slice(s, e, steps[i] if steps else 1)
    check(net, {"x": X}, {y.output.name: X[tuple(index)].astype(np.float64)}, device, exact=True)


def test_slice_split_and_int32(device, rng):
    net = pk.Network("split")
    x = net.add_input("x", (6, 4), "int32")
    parts = [net.add_slice(x, [a], [b], [0]) for a, b in ((0, 2), (2, 5), (5, 6))]
    for p in parts:
        net.mark_output(p.output)
    X = rng.integers(-50, 50, (3, 6, 4)).astype(np.int32)
    want = {p.output.name: X[:, a:b] for p, (a, b) in zip(parts, ((0, 2), (2, 5), (5, 6)))}
    check(net, {"x": X}, want, device, precisions=("fp32", "fp16"))


@pytest.mark.parametrize("shape,target", [((3, 1), (3, 4)), ((1, 4), (2, 3, 4)), ((3, 1), (2, 1, 5)),
                                          ((2, 3), (2, 3)), ((1,), (2, 2, 2))])
def test_expand_broadcasts_both_ways(device, rng, shape, target):
    net, x, X = one_input(rng, shape)
    y = net.add_expand(x, target)
    net.mark_output(y.output)
    lifted = X.reshape((X.shape[0],) + (1,) * (len(target) - len(shape)) + shape)   # rank grows after the batch
    want = lifted.astype(np.float64) * np.ones(target)     # NumPy's bidirectional broadcast
    assert y.output.shape == want.shape[1:]
    check(net, {"x": X}, {y.output.name: want}, device, exact=True)


def test_expand_of_a_constant_is_folded(device, rng):
    net, x, X = one_input(rng, (2, 3))
    c = net.add_expand(net.add_constant(np.arange(3, dtype=np.float32)).output, (2, 3))
    y = net.add_elementwise(x, c.output, "sum")
    net.mark_output(y.output)
    check(net, {"x": X}, {y.output.name: X + np.arange(3)}, device, precisions=("fp32",))
    eng = pk.Builder(device).build(net, pk.BuilderConfig(max_batch_size=2))
    assert c.name not in list(eng.layers["layer"])


@pytest.mark.parametrize("cond_dtype", ["int32", "float32"])
def test_select_broadcasts_condition_and_constant(device, rng, cond_dtype):
    net = pk.Network("where")
    cond = net.add_input("c", (3, 1, 5), cond_dtype)
    a = net.add_input("a", (3, 4, 5))
    other = net.add_constant(rng.standard_normal((1, 4, 1)).astype(np.float32))
    y = net.add_select(cond, a, other.output)
    net.mark_output(y.output)
    C = rng.integers(0, 2, (2, 3, 1, 5)).astype(cond_dtype) * (0.5 if cond_dtype == "float32" else 1)
    A = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    O = np.asarray(net.get_layer(other.name).weights["values"], np.float64)
    check(net, {"c": C, "a": A}, {y.output.name: np.where(C != 0, A, O)}, device, exact=True)


def test_select_of_int32_values(device, rng):
    net = pk.Network("where_int")
    cond = net.add_input("c", (4,), "int32")
    a = net.add_input("a", (4,), "int32")
    b = net.add_input("b", (1,), "int32")
    y = net.add_select(cond, a, b)
    net.mark_output(y.output)
    C, A, B = (rng.integers(-3, 3, s).astype(np.int32) for s in ((2, 4), (2, 4), (2, 1)))
    check(net, {"c": C, "a": A, "b": B}, {y.output.name: np.where(C != 0, A, B)}, device, precisions=("fp32",))


def test_select_refuses_mixed_value_kinds():
    net = pk.Network("bad")
    c = net.add_input("c", (4,), "int32")
    x = net.add_input("x", (4,))
    with pytest.raises(pk.PerfkitError, match="add_identity"):
        net.add_select(c, x, c)


@pytest.mark.parametrize("kwargs,match", [
    ({"starts": [0], "ends": [1], "steps": [0]}, "non-zero"),
    ({"starts": [3], "ends": [1]}, "selects nothing"),
    ({"starts": [-5], "ends": [-7], "axes": [0], "steps": [-2]}, "selects nothing"),   # NumPy's clamping, not 0
    ({"starts": [0, 0], "ends": [1, 1], "axes": [1, -2]}, "same axis twice"),
    ({"starts": [0], "ends": [1], "axes": [3]}, "out of range"),
    ({"starts": [0], "ends": [1, 2]}, "equal length"),
    ({"starts": [0.5], "ends": [1]}, "must be an int")])
def test_slice_refuses_bad_parameters_at_add_time(kwargs, match):
    net = pk.Network("bad")
    x = net.add_input("x", (3, 4, 5))
    with pytest.raises(pk.PerfkitError, match=match):
        net.add_slice(x, **kwargs)
    assert not net.layers


def test_slice_random_parameters_against_onnx_reference():
    """100 seeded random slices (negative starts, ends and steps beyond the axes) against onnx.reference."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(7)
    compared = 0
    for _ in range(100):
        shape = tuple(int(v) for v in rng.integers(1, 7, 3))
        axes = [int(a) for a in rng.choice(3, int(rng.integers(1, 4)), replace=False)]
        steps = [int(rng.choice([-3, -2, -1, 1, 2, 3])) for _ in axes]
        starts = [int(rng.integers(-8, 8)) for _ in axes]
        ends = [s + int(np.sign(p)) * int(rng.integers(1, 9)) for s, p in zip(starts, steps)]   # mostly non-empty
        X = rng.standard_normal((2,) + shape).astype(np.float32)
        inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                 (("s", [0] + starts), ("e", [2] + ends), ("a", [0] + [a + 1 for a in axes]), ("p", [1] + steps))]
        graph = helper.make_graph([helper.make_node("Slice", ["x", "s", "e", "a", "p"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, X.shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
        want = ReferenceEvaluator(helper.make_model(graph)).run(None, {"x": X})[0]
        net = pk.Network("fuzz")
        x = net.add_input("x", shape)
        if want.size == 0:                      # perfkit has no empty tensors: refused at add time
            with pytest.raises(pk.PerfkitError, match="selects nothing"):
                net.add_slice(x, starts, ends, axes, steps)
            continue
        y = net.add_slice(x, starts, ends, axes, steps)
        net.mark_output(y.output)
        eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
        np.testing.assert_array_equal(eng.create_execution_context().execute({"x": X})[y.output.name], want)
        compared += 1
    assert compared >= 25          # the rest select nothing and are refused


def test_expand_refuses_incompatible_shapes():
    net = pk.Network("bad")
    x = net.add_input("x", (3, 4))
    with pytest.raises(pk.PerfkitError, match="does not broadcast"):
        net.add_expand(x, (2, 4))
    with pytest.raises(pk.PerfkitError, match="fewer dimensions"):
        net.add_expand(x, (12,))
    with pytest.raises(pk.PerfkitError, match="positive"):
        net.add_expand(x, (3, 0))


def test_costs_count_the_bytes_moved():
    net = pk.Network("cost")
    x = net.add_input("x", (4, 8, 8))
    layers = {"slice": net.add_slice(x, [0], [4], [1], [2]), "expand": net.add_expand(net.add_slice(x, [0], [1]).output, (2, 4, 8, 8))}
    from perfkit.ops import get_op
    for kind, layer in layers.items():
        op = get_op(layer.type)
        cost = op.cost(layer.params, [t.spec for t in layer.inputs], [t.spec for t in layer.outputs], layer.weights)
        out_bytes = layer.outputs[0].spec.nbytes
        assert cost.flops == 0.0
        assert out_bytes < cost.bytes <= out_bytes + x.spec.nbytes, kind
