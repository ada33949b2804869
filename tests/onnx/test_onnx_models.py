"""Whole models imported from ONNX against onnxruntime: an MLP, a ResNet-style CNN with batch norm and
residual sums, a transformer encoder block (perfkit.onnx.samples, built with onnx.helper), in fp32 and
in fp16 (forced), at batch 1 and a larger batch, through fusions the builder applies."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import perfkit as pk  # noqa: E402
import perfkit.onnx as po  # noqa: E402
from perfkit.onnx import samples  # noqa: E402
from perfkit.precision import TOLERANCE  # noqa: E402

MODELS = {name: fn() for name, fn in samples.SAMPLES.items()}


def _input(model, batch: int, seed: int = 1) -> np.ndarray:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:]
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def _reference(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def model_tolerance(precision: str, ref: np.ndarray) -> dict:
    """A layer's tolerance, its absolute part scaled to the output's magnitude: a whole network rounds at
    every layer, so errors are relative to the values it carries, not to each output element."""
    tol = TOLERANCE[precision]
    return {"rtol": tol.rtol, "atol": tol.atol + tol.rtol * float(np.abs(ref).max())}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_matches_onnxruntime(name, precision):
    model = MODELS[name]
    net = po.load(model)
    assert net.import_info.batch == "symbolic" and net.import_info.max_batch_size is None
    cfg = pk.BuilderConfig(max_batch_size=4, precision=precision, strict_types=precision != "fp32", tactics="default")
    ctx = pk.Builder("cpu").build(net, cfg).create_execution_context()
    for batch in (1, 4):
        x = _input(model, batch, seed=batch)
        ref = _reference(model, x)
        y = ctx.execute({"x": x})[model.graph.output[0].name]
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, **model_tolerance(precision, ref))


def test_fp16_is_really_fp16_and_tolerances_differ():
    """The fp16 engine stores its layers in float16 (so its error exceeds fp32's tolerance somewhere)."""
    model = MODELS["transformer_block"]
    net = po.load(model)
    x = _input(model, 2)
    ref = _reference(model, x)
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=2, precision="fp16", strict_types=True,
                                                        tactics="default"))
    assert set(eng.layers["precision"]) >= {"fp16"}
    y = eng.create_execution_context().execute({"x": x})["ln2"]
    err = np.abs(y - ref).max()
    assert err > model_tolerance("fp32", ref)["atol"], err


def test_layers_keep_onnx_names_and_op_types():
    net = po.load(MODELS["resnet_cnn"])
    names = {layer.name for layer in net.layers}
    assert {"stem", "stem_bn", "layer2.proj", "layer2.add", "avgpool", "fc"} <= names
    assert net.get_layer("layer2.add").source_op == "Add"
    assert net.import_info.layer_ops["stem_bn"] == "BatchNormalization"
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=1, tactics="default"))
    fused = eng.layers.set_index("layer")["source_op"]
    conv = next(n for n in fused.index if n.startswith("stem +") or n == "stem")
    assert "Conv" in fused[conv] and "BatchNormalization" in fused[conv]


def test_shape_arithmetic_is_folded_at_import():
    info = po.load(MODELS["transformer_block"]).import_info
    folded = {n for n, op, why in info.removed if why.startswith("folded")}
    assert {"shape", "batch", "batch_1d", "split_shape", "merge_shape"} <= folded
    assert not any(op in ("Shape", "Gather", "Concat", "Unsqueeze") for op in info.layer_ops.values())
