"""What real ONNX files bring: fixed, symbolic or absent batch dimensions, initializers listed as inputs,
external data, unnamed nodes, Dropout/Identity, check() frames, errors that name node, op and opset,
network_from for sweeps and the CLI."""
from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import perfkit as pk  # noqa: E402
import perfkit.onnx as po  # noqa: E402
from perfkit.onnx import samples  # noqa: E402


def _model(nodes, inputs, outputs, inits=(), opset=13, ir=8):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                          [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
                          [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    if ir < 4:              # IR 3: every initializer is also a graph input
        g.input.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, np.shape(a)) for n, a in inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def _run(net, feeds, batch=None):
    b = batch or next(iter(feeds.values())).shape[0]
    ctx = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=b, tactics="default")).create_execution_context()
    return ctx.execute(feeds)


def _ort(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


W = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)


def _fc(batch_dim, opset=13):
    return _model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                  [("x", TensorProto.FLOAT, [batch_dim, 4])], [("y", TensorProto.FLOAT, [batch_dim, 3])],
                  [("w", W)], opset)


def test_symbolic_fixed_given_and_absent_batch():
    sym, fixed = po.load(_fc("N")), po.load(_fc(8))
    assert (sym.import_info.batch, sym.import_info.max_batch_size) == ("symbolic", None)
    assert (fixed.import_info.batch, fixed.import_info.max_batch_size) == ("fixed", 8)
    assert po.max_batch_size(fixed) == 8 and po.max_batch_size(sym, default=16) == 16
    assert sym.inputs[0].shape == (4,)
    given = po.load(_fc("N"), batch=32)
    assert (given.import_info.batch, given.import_info.max_batch_size) == ("given", 32)
    none = po.load(_fc(5), batch=None)
    assert none.inputs[0].shape == (5, 4) and none.import_info.max_batch_size == 1
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    ref = _ort(_fc(5), {"x": x})[0]
    np.testing.assert_allclose(_run(none, {"x": x[None]}, 1)["y"][0], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_run(fixed, {"x": x[:3]})["y"], ref[:3], rtol=1e-5, atol=1e-6)   # any batch <= 8


def test_initializers_listed_as_graph_inputs_are_constants():
    m = _fc("N")
    m.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3]))     # as IR < 4 exporters did
    net = po.load(m)
    assert [t.name for t in net.inputs] == ["x"]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(_run(net, {"x": x})["y"], np.maximum(x @ W, 0), rtol=1e-6)


def test_external_data_beside_the_model_and_nowhere_else(tmp_path):
    m = samples.mlp((64, 32, 4))
    path = tmp_path / "ext.onnx"
    saved = type(m)()
    saved.CopyFrom(m)
    onnx.save_model(saved, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="ext.bin",
                    size_threshold=16)
    assert (tmp_path / "ext.bin").exists() and os.path.getsize(path) < 2000
    net = po.load(str(path))
    x = np.random.default_rng(2).standard_normal((2, 64)).astype(np.float32)
    np.testing.assert_allclose(_run(net, {"x": x})["prob"], _ort(m, {"x": x})[0], rtol=1e-4, atol=1e-6)
    os.remove(tmp_path / "ext.bin")
    with pytest.raises(po.OnnxFileError, match="ext.bin.*missing"):
        po.load(str(path))
    evil = onnx.load(str(path), load_external_data=False)
    for t in evil.graph.initializer:
        for kv in t.external_data:
            if kv.key == "location":
                kv.value = "../../etc/passwd"
    onnx.save_model(evil, str(tmp_path / "evil.onnx"))
    with pytest.raises(po.OnnxFileError, match="outside the model's folder"):
        po.load(str(tmp_path / "evil.onnx"))
    with pytest.raises(po.OnnxFileError, match="pass the model's path"):
        po.load(evil)


def test_unnamed_nodes_take_their_output_names_and_dropout_identity_vanish():
    m = _model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Dropout", ["h"], ["d"]),
                helper.make_node("Identity", ["d"], ["i"]), helper.make_node("Relu", ["i"], ["y"])],
               [("x", TensorProto.FLOAT, ["N", 4])], [("y", TensorProto.FLOAT, ["N", 3])], [("w", W)])
    net = po.load(m)
    assert [layer.name for layer in net.layers] == ["h", "y"]
    assert [op for _, op, _ in net.import_info.removed] == ["Dropout", "Identity"]
    frame = po.check(m)
    assert list(frame["became"]) == ["h", "removed", "removed", "y"]


def test_unsupported_operator_and_attribute_name_node_op_and_opset():
    m = _model([helper.make_node("Relu", ["x"], ["r"], name="act"),
                helper.make_node("NonZero", ["r"], ["nz"], name="where_nonzero"),
                helper.make_node("Cast", ["nz"], ["f"], name="to_float", to=TensorProto.FLOAT),
                helper.make_node("Relu", ["f"], ["y"], name="after")],
               [("x", TensorProto.FLOAT, ["N", 4])], [("y", TensorProto.FLOAT, ["a", "b"])])
    with pytest.raises(po.UnsupportedOnnxError) as info:
        po.load(m)
    err = info.value
    assert (err.node, err.op_type, err.opset) == ("where_nonzero", "NonZero", 13)
    assert "where_nonzero" in str(err) and "NonZero" in str(err) and "opset 13" in str(err) and "Conv" in str(err)
    frame = po.check(m)
    assert frame.attrs["schema"] == "onnx_check"
    assert list(frame["supported"]) == [True, False, True, True]
    assert "not supported" in frame.loc[1, "reason"] and frame.loc[0, "reason"] == ""
    assert "not checked further" in frame.loc[2, "reason"]            # NonZero's output shape is unknown
    m2 = _model([helper.make_node("Pad", ["x", "p"], ["y"], name="pad", mode="mirror_of_nothing")],
                [("x", TensorProto.FLOAT, ["N", 2, 4, 4])], [("y", TensorProto.FLOAT, ["N", 2, 4, 4])],
                [("p", np.zeros(8, np.int64))])
    with pytest.raises(po.OnnxImportError, match="pad.*Pad"):
        po.load(m2)


def test_check_stands_in_for_a_failed_node_when_shapes_are_known():
    m = _model([helper.make_node("Relu", ["x"], ["r"], name="a"),
                helper.make_node("CumSum", ["r", "ax"], ["h"], name="b"),
                helper.make_node("Softmax", ["h"], ["y"], name="c", axis=-1)],
               [("x", TensorProto.FLOAT, ["N", 4])], [("y", TensorProto.FLOAT, ["N", 4])], [("ax", np.array(1))])
    frame = po.check(m)
    assert list(frame["supported"]) == [True, False, True] and frame.loc[2, "reason"] == ""
    assert frame.loc[2, "became"] == "c"


def test_symbolic_inner_dims_need_input_shapes():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", TensorProto.FLOAT, ["N", "seq", 8])],
               [("y", TensorProto.FLOAT, ["N", "seq", 8])])
    with pytest.raises(po.UnsupportedOnnxError, match="input_shapes"):
        po.load(m)
    assert po.load(m, input_shapes={"x": (5, 8)}).inputs[0].shape == (5, 8)


def test_reshape_that_merges_the_batch_says_so_and_batch_none_works():
    m = _model([helper.make_node("Reshape", ["x", "s"], ["y"], name="merge")],
               [("x", TensorProto.FLOAT, [2, 3, 4])], [("y", TensorProto.FLOAT, [6, 4])], [("s", np.array([6, 4]))])
    with pytest.raises(po.UnsupportedOnnxError, match="merge.*batch"):
        po.load(m)
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(_run(po.load(m, batch=None), {"x": x[None]})["y"][0], x.reshape(6, 4))


def test_old_opsets_import():
    """Opset 7: Upsample with a scales attribute, BatchNormalization with spatial, Softmax over flattened dims."""
    m = _model([helper.make_node("Upsample", ["x"], ["u"], mode="nearest", scales=[1.0, 1.0, 2.0, 2.0]),
                helper.make_node("BatchNormalization", ["u", "g", "b", "m", "v"], ["n"], spatial=1),
                helper.make_node("Softmax", ["n"], ["y"], axis=1)],
               [("x", TensorProto.FLOAT, ["N", 2, 3, 3])], [("y", TensorProto.FLOAT, ["N", 2, 6, 6])],
               [("g", np.ones(2, np.float32)), ("b", np.zeros(2, np.float32)), ("m", np.zeros(2, np.float32)),
                ("v", np.ones(2, np.float32))], opset=7, ir=3)
    x = np.random.default_rng(3).standard_normal((2, 2, 3, 3)).astype(np.float32)
    ref = _ort(m, {"x": x})[0]
    np.testing.assert_allclose(_run(po.load(m), {"x": x})["y"], ref, rtol=1e-4, atol=1e-6)


def test_network_from_accepts_networks_sample_names_and_onnx(tmp_path):
    net = pk.models.mlp((4, 3, 2))
    assert po.network_from(net) is net
    assert po.network_from("mnist_mlp").name == pk.models.mnist_mlp().name
    path = tmp_path / "m.onnx"
    onnx.save(_fc("N"), str(path))
    for src in (str(path), path, path.read_bytes(), _fc("N")):
        assert po.is_onnx(src)
        assert [t.name for t in po.network_from(src).outputs] == ["y"]
    assert not po.is_onnx("mnist_mlp") and not po.is_onnx(net)
    with pytest.raises(pk.UnknownNameError, match="neither a sample network"):
        po.network_from("resnet_huge")
    with pytest.raises(po.OnnxFileError):
        po.network_from(str(tmp_path / "missing.onnx"))


def test_old_opsets_are_converted_and_unknown_ones_refused_with_the_range():
    m = _fc("N")
    m.opset_import[0].version = 6
    info = po.load(m).import_info
    assert (info.opset, info.converted_from) == (7, 6)
    m.opset_import[0].version = 9999
    with pytest.raises(po.UnsupportedOnnxError, match="opsets 7 to"):
        po.load(m)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes_with_crops_match_onnxruntime(mode):
    """Negative pads crop (before the other modes pad); an output declared without a shape is accepted."""
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 5)).astype(np.float32)
    for pads in ([0, 0, -1, 1, 0, 0, 2, -1], [0, 0, 1, 0, 0, 0, 0, 2], [0, 1, 0, 0, 0, 1, 0, 0]):
        m = _model([helper.make_node("Pad", ["x", "p", "v"], ["y"], name="pad", mode=mode)],
                   [("x", TensorProto.FLOAT, ["N", 2, 4, 5])], [("y", TensorProto.FLOAT, None)],
                   [("p", np.array(pads, np.int64)), ("v", np.array(1.5, np.float32))], opset=18)
        np.testing.assert_allclose(_run(po.load(m), {"x": x})["y"], _ort(m, {"x": x})[0], rtol=1e-6)


def test_per_channel_arithmetic_after_a_convolution_folds_into_it():
    """Mul/Add by per-channel constants (batch norm as exporters sometimes write it) become Scale layers,
    which the builder folds into the convolution: one engine layer, same values as onnxruntime."""
    rng = np.random.default_rng(4)
    m = _model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                helper.make_node("Mul", ["c", "s"], ["m"], name="bn_mul"),
                helper.make_node("Add", ["t", "m"], ["a"], name="bn_add"),
                helper.make_node("Relu", ["a"], ["y"], name="relu")],
               [("x", TensorProto.FLOAT, ["N", 3, 6, 6])], [("y", TensorProto.FLOAT, ["N", 4, 6, 6])],
               [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
                ("s", rng.uniform(0.5, 2, (1, 4, 1, 1)).astype(np.float32)),
                ("t", rng.standard_normal((4, 1, 1)).astype(np.float32))])
    net = po.load(m)
    assert [layer.type for layer in net.layers] == ["convolution", "scale", "scale", "activation"]
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2, tactics="default"))
    assert len(eng.layers) == 1 and eng.layers["source_op"][0] == "Conv, Mul, Add, Relu"
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    y = eng.create_execution_context().execute({"x": x})["y"]
    np.testing.assert_allclose(y, _ort(m, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_model_local_functions_are_inlined():
    f = helper.make_function("local", "ScaledRelu", ["X", "S"], ["Y"],
                             [helper.make_node("Mul", ["X", "S"], ["T"]), helper.make_node("Relu", ["T"], ["Y"])],
                             opset_imports=[helper.make_opsetid("", 17)])
    g = helper.make_graph([helper.make_node("ScaledRelu", ["x", "s"], ["y"], domain="local", name="block")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                          [numpy_helper.from_array(np.array([1, -2, 3, 0.5], np.float32), "s")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                          functions=[f])
    m.ir_version = 8
    net = po.load(m)
    assert {layer.source_op for layer in net.layers} >= {"Mul", "Relu"}
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(_run(net, {"x": x})["y"], _ort(m, {"x": x})[0], rtol=1e-6)


def test_without_the_onnx_package_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    assert po.is_onnx("model.onnx") and po.network_from("mnist_mlp").name == "mnist_mlp"
    for call in (lambda: po.load(b"\x08\x07"), lambda: po.check("model.onnx")):
        with pytest.raises(po.OnnxDependencyError, match=r"pip install 'perfkit\[onnx\]'") as info:
            call()
        assert isinstance(info.value, pk.PerfkitError)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_group_normalization_matches_onnx_reference(groups):
    """One group spans every channel (perfkit's num_groups=1 would normalise each channel alone)."""
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(groups)
    m = _model([helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], name="gn", num_groups=groups,
                                 epsilon=1e-5)],
               [("x", TensorProto.FLOAT, ["N", 4, 3, 5])], [("y", TensorProto.FLOAT, ["N", 4, 3, 5])],
               [("s", rng.uniform(0.5, 2, 4).astype(np.float32)), ("b", rng.standard_normal(4).astype(np.float32))],
               opset=21, ir=10)
    x = (rng.standard_normal((2, 4, 3, 5)) * np.arange(1, 5)[None, :, None, None]).astype(np.float32)
    ref = ReferenceEvaluator(m).run(None, {"x": x})[0]
    np.testing.assert_allclose(_run(po.load(m), {"x": x})["y"], ref, rtol=1e-4, atol=1e-5)


def test_outputs_that_are_inputs_or_listed_twice_are_refused_with_a_reason():
    def graph(outputs):
        g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", 2]) for o in outputs])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m
    with pytest.raises(po.UnsupportedOnnxError, match="graph output 'x' is the graph input"):
        po.load(graph(["y", "x"]))
    with pytest.raises(po.OnnxFileError, match="'y' listed more than once"):
        po.load(graph(["y", "y"]))


def test_check_rows_follow_the_files_node_order():
    m = samples.resnet_cnn(image=8, widths=(4, 8))
    assert list(po.check(m)["node"]) == [n.name for n in m.graph.node]


@pytest.mark.parametrize("dims, length", [([1], None), ([4], 8), ([2], 64)])
def test_external_data_must_hold_exactly_what_its_initializer_declares(tmp_path, dims, length):
    # a 1 KB model can point many initializers at one large file: each reads its declared bytes or is refused
    import onnx
    from onnx import TensorProto, helper
    (tmp_path / "w.bin").write_bytes(b"\0" * 4096)
    inits = []
    for i in range(30):
        t = helper.make_tensor(f"w{i}", TensorProto.FLOAT, dims, [0.0] * int(np.prod(dims)))
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "w.bin"),) + ((("length", str(length)),) if length is not None else ()):
            e = t.external_data.add()
            e.key, e.value = k, v
        inits.append(t)
    g = helper.make_graph([helper.make_node("Add", ["x", "w0"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + dims)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"] + dims)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    with pytest.raises(po.OnnxFileError, match="declares .* bytes"):
        po.load(str(tmp_path / "m.onnx"))


@pytest.mark.parametrize("op, shapes", [("Mul", [(17000, 1), (1, 17000)]), ("Add", [(20000, 1, 1), (1, 20000, 1)]),
                                        ("MatMul", [(17000, 1), (1, 17000)])])
def test_a_folded_tensor_is_bounded_before_it_is_computed(op, shapes):
    # a 136 KB model whose constant product would be 1.2 GB: refused from the shapes, not after evaluating it
    inits = [numpy_helper.from_array(np.ones(s, np.float32), n) for n, s in zip("ab", shapes)]
    nodes = [helper.make_node(op, ["a", "b"], ["c"]), helper.make_node("ReduceSum", ["c"], ["s"], keepdims=0),
             helper.make_node("Add", ["x", "s"], ["y"])]
    g = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(po.OnnxFileError, match="would make a tensor of more than"):
        po.load(m.SerializeToString())
