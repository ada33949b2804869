"""Resize against ONNX's own reference implementation (onnx.reference) for every mode, coordinate
transformation and nearest rounding, by sizes and by scales, in each precision on every device; and
against hand-written NumPy where the reference has no case (tf_half_pixel_for_nn, int32 data)."""
import numpy as np
import pytest

import perfkit as pk
from onnx_op_check import check, rounded

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

COORDS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"]


def reference_resize(x, sizes=None, scales=None, **attrs):
    """ONNX Resize (opset 19) of a float32 NCHW array by onnx.reference."""
    names = ["x", "", "scales" if scales is not None else "", "sizes" if sizes is not None else ""]
    while names[-1] == "":
        names.pop()
    inits = []
    if scales is not None:
        inits.append(helper.make_tensor("scales", TensorProto.FLOAT, [len(scales)], scales))
    if sizes is not None:
        inits.append(helper.make_tensor("sizes", TensorProto.INT64, [len(sizes)], sizes))
    graph = helper.make_graph([helper.make_node("Resize", names, ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    return ReferenceEvaluator(model).run(None, {"x": np.asarray(x, np.float32)})[0].astype(np.float64)


def resize_net(in_shape, **kwargs):
    net = pk.Network("resize")
    x = net.add_input("x", in_shape)
    y = net.add_resize(x, **kwargs)
    net.mark_output(y.output)
    return net, y


@pytest.mark.parametrize("mode,rounding,exclude", [("nearest", "round_prefer_floor", False),
                                                   ("nearest", "round_prefer_ceil", False),
                                                   ("nearest", "floor", False), ("nearest", "ceil", False),
                                                   ("linear", "round_prefer_floor", False),
                                                   ("cubic", "round_prefer_floor", False),
                                                   ("cubic", "round_prefer_floor", True)])
@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("sizes", [(3, 9, 4), (3, 2, 11), (3, 1, 6)])
def test_resize_by_sizes_matches_onnx_reference(device, rng, mode, rounding, exclude, coord, sizes):
    X = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    net, y = resize_net((3, 5, 6), shape=sizes, mode=mode, coordinate_transformation=coord,
                        nearest_rounding=rounding, exclude_outside=exclude)
    attrs = dict(mode=mode, coordinate_transformation_mode=coord, nearest_mode=rounding, exclude_outside=int(exclude))
    check(net, {"x": X}, lambda p: {y.output.name: reference_resize(rounded(X, p), sizes=(2,) + sizes, **attrs)},
          device, precisions=("fp32",), exact=mode == "nearest")


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("coord", ["half_pixel", "align_corners"])
def test_resize_in_each_precision(device, rng, mode, coord):
    X = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    net, y = resize_net((3, 5, 6), shape=(2, 9, 4), mode=mode, coordinate_transformation=coord)
    check(net, {"x": X}, lambda p: {y.output.name: reference_resize(rounded(X, p), sizes=(2, 2, 9, 4), mode=mode,
                                                                    coordinate_transformation_mode=coord)},
          device, exact=mode == "nearest")


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("coord", ["half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"])
@pytest.mark.parametrize("scales", [(1.0, 1.5, 0.6), (2.0, 2.0, 3.0), (1.0, 0.5, 0.34)])
def test_resize_by_scales_matches_onnx_reference(device, rng, mode, coord, scales):
    X = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    net, y = resize_net((3, 5, 6), scales=scales, mode=mode, coordinate_transformation=coord)
    want = reference_resize(X, scales=(1.0,) + scales, mode=mode, coordinate_transformation_mode=coord)
    assert y.output.shape == want.shape[1:]          # floor(n * scale), as ONNX
    check(net, {"x": X}, lambda p: {y.output.name: reference_resize(rounded(X, p), scales=(1.0,) + scales, mode=mode,
                                                                    coordinate_transformation_mode=coord)},
          device, precisions=("fp32", "fp16"))


def test_nearest_integer_upsampling_is_repeat_and_moves_int32(device, rng):
    net = pk.Network("up")
    x = net.add_input("x", (2, 3, 4), "int32")
    y = net.add_resize(x, scales=(1, 2, 3), mode="nearest", coordinate_transformation="asymmetric",
                       nearest_rounding="floor")
    net.mark_output(y.output)
    X = rng.integers(-100, 100, (3, 2, 3, 4)).astype(np.int32)
    check(net, {"x": X}, {y.output.name: X.repeat(2, axis=2).repeat(3, axis=3)}, device, precisions=("fp32",))


def test_tf_half_pixel_for_nn(device, rng):
    X = rng.standard_normal((2, 1, 7)).astype(np.float32)
    net, y = resize_net((1, 7), shape=(1, 3), coordinate_transformation="tf_half_pixel_for_nn")
    src = np.clip(np.ceil((np.arange(3) + 0.5) * 7 / 3 - 0.5), 0, 6).astype(int)   # round_prefer_floor
    check(net, {"x": X}, {y.output.name: X[:, :, src].astype(np.float64)}, device, exact=True)


def test_tables_are_built_once_as_weights_and_identity_axes_are_skipped(rng):
    net, y = resize_net((3, 5, 6), shape=(3, 10, 6), mode="linear")
    assert net.summary()["parameters"].iloc[0] == 0           # nothing the user gave
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    assert eng.layers["tactic"].iloc[0] == "gather"
    keys = [k for k in eng.plan.weights if y.name in k]
    assert sorted(k.rsplit("/", 1)[-1] for k in keys) == ["index_1", "weight_1"], keys    # only H changes
    X = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    got = eng.create_execution_context().execute({"x": X})[y.output.name]
    np.testing.assert_allclose(got, reference_resize(X, sizes=(2, 3, 10, 6), mode="linear"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["cubic", "nearest", "linear"])   # nearest: strided passes; linear: periodic
def test_a_saved_resize_engine_loads_and_computes_the_same(rng, tmp_path, mode):
    net, y = resize_net((2, 4, 4), scales=(1, 2, 0.5), mode=mode, exclude_outside=mode == "cubic")
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2))
    path = str(tmp_path / "resize.engine")
    eng.save(path)
    X = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    again = pk.load_engine(path)                  # the plan check replays the layer, tables included
    np.testing.assert_array_equal(again.create_execution_context().execute({"x": X})[y.output.name],
                                  eng.create_execution_context().execute({"x": X})[y.output.name])


def test_resize_of_a_constant_is_folded(rng):
    net = pk.Network("fold")
    x = net.add_input("x", (1, 4))
    c = net.add_resize(net.add_constant(np.arange(2, dtype=np.float32).reshape(1, 2)).output, shape=(1, 4),
                       mode="linear", coordinate_transformation="align_corners")
    net.mark_output(net.add_elementwise(x, c.output, "sum").output)
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=1))
    assert c.name not in list(eng.layers["layer"])
    got = eng.create_execution_context().execute({"x": np.zeros((1, 1, 4), np.float32)})
    np.testing.assert_allclose(next(iter(got.values()))[0, 0], [0, 1 / 3, 2 / 3, 1], rtol=1e-6)


def test_resize_cost_counts_taps():
    from perfkit.ops import get_op
    costs = {}
    for mode in ("nearest", "linear", "cubic"):
        net, y = resize_net((3, 8, 8), scales=(1, 2, 2), mode=mode)
        costs[mode] = get_op("resize").cost(y.params, [net.inputs[0].spec], [y.output.spec], {})
    assert costs["nearest"].flops == 0 < costs["linear"].flops < costs["cubic"].flops
    assert costs["nearest"].bytes == costs["cubic"].bytes == 4 * 3 * 8 * 8 * 5


@pytest.mark.parametrize("kwargs,match", [
    ({}, "exactly one of shape"), ({"shape": (3, 4), "scales": (1, 1)}, "exactly one of shape"),
    ({"shape": (3, 4, 5)}, "one entry per per-sample axis"), ({"scales": (1, 0.1)}, "at least 1"),
    ({"scales": (1, -2)}, "positive finite"), ({"shape": (3, 4), "mode": "area"}, "nearest, linear, cubic"),
    ({"shape": (3, 4), "coordinate_transformation": "tf_crop_and_resize"}, "half_pixel"),
    ({"shape": (3, 4), "nearest_rounding": "up"}, "round_prefer_floor"),
    ({"shape": (3, 4), "exclude_outside": 1}, "True or False")])
def test_resize_refuses_bad_parameters(kwargs, match):
    net = pk.Network("bad")
    x = net.add_input("x", (3, 5))
    with pytest.raises(pk.PerfkitError, match=match):
        net.add_resize(x, **kwargs)
    i = net.add_input("i", (3, 5), "int32")
    with pytest.raises(pk.PerfkitError, match="needs a float input"):
        net.add_resize(i, shape=(3, 9), mode="linear")
    assert not net.layers


def test_integer_factors_use_strided_copies_instead_of_gathers():
    from perfkit.ops.resize import strided_pattern
    assert strided_pattern(np.arange(8) // 2, 4) == ["repeat", 0, 2]
    assert strided_pattern(np.arange(3) * 3 + 1, 9) == ["pick", 1, 3]
    assert strided_pattern(np.array([0, 0, 1, 2, 2]), 3) is None           # 5/3: a gather
    assert strided_pattern(np.array([0, 1, 1, 2]), 3) is None
    net, y = resize_net((3, 5, 6), scales=(1, 2, 0.5))
    params, _ = pk.ops.get_op("resize").prepare_tactic("gather", y.params, {})
    assert params["strided"] == {"1": ["repeat", 0, 2], "2": ["pick", 0, 2]}


def test_integer_linear_and_cubic_upsampling_use_periodic_phases():
    from perfkit.ops.resize import periodic_pattern
    net, y = resize_net((3, 5, 6), scales=(1, 2, 3), mode="linear")
    params, _ = pk.ops.get_op("resize").prepare_tactic("gather", y.params, {})
    assert sorted(params["periodic"]) == ["1", "2"]
    two = params["periodic"]["1"]                      # half_pixel x2: x[i-1]/4 + 3x[i]/4, then 3x[i]/4 + x[i+1]/4
    assert (two["r"], two["lo"], two["hi"]) == (2, 1, 1)
    assert two["phases"] == [[[-1, 0.25], [0, 0.75]], [[0, 0.75], [1, 0.25]]]
    p = {**y.params, "mode": "linear", "coordinate_transformation": "align_corners"}
    assert periodic_pattern(p, 10, 5, 2.0) is None     # align_corners' taps do not repeat
    assert periodic_pattern({**y.params, "mode": "cubic", "exclude_outside": True}, 10, 5, 2.0) is None
    assert periodic_pattern({**y.params, "mode": "linear"}, 7, 5, 1.4) is None
