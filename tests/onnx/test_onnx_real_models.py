"""Real architectures from ONNX's own test data (onnx/backend/test/data/light: model-zoo networks exported by
Caffe2 in opset 9, IR 3 — initializers listed as inputs, weights made by ConstantOfShape, Dropout with its mask
output, LRN, Sum, fixed batch 1). Their weights are replaced by deterministic random values (so the outputs
carry information), then perfkit's engine is compared with onnxruntime."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402

import perfkit as pk  # noqa: E402
import perfkit.onnx as po  # noqa: E402

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
MODELS = ["light_squeezenet", "light_inception_v1", "light_shufflenet",
          pytest.param("light_resnet50", marks=pytest.mark.slow)]


def randomized(name: str):
    """The light model with each ConstantOfShape weight replaced by a seeded random initializer: He-normal
    for kernels, uniform(0.5, 1.5) for per-channel vectors (scales, shifts, means, variances)."""
    m = onnx.load(os.path.join(LIGHT, name + ".onnx"))
    g = m.graph
    shapes = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    rng = np.random.default_rng(sum(map(ord, name)))
    keep = []
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = tuple(int(d) for d in shapes[node.input[0]])
            if len(shape) > 1:
                a = rng.standard_normal(shape) * np.sqrt(2.0 / max(1, int(np.prod(shape[1:]))))
            else:
                a = rng.uniform(0.5, 1.5, shape)
            g.initializer.append(numpy_helper.from_array(a.astype(np.float32), node.output[0]))
            g.input.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, shape))
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)
    return m


def test_the_light_models_are_there():
    names = {m if isinstance(m, str) else m.values[0] for m in MODELS}
    assert {os.path.basename(p)[:-5] for p in glob.glob(os.path.join(LIGHT, "*.onnx"))} >= names


@pytest.mark.parametrize("name", MODELS)
def test_real_architecture_matches_onnxruntime(name):
    m = randomized(name)
    net = po.load(m)
    info = net.import_info
    assert info.batch == "fixed" and info.max_batch_size == 1 and len(net.inputs) == 1
    x = np.random.default_rng(0).standard_normal((1,) + net.inputs[0].shape).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {net.inputs[0].name: x})[0]
    eng = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=1, tactics="default"))
    y = eng.create_execution_context().execute({net.inputs[0].name: x})[net.outputs[0].name]
    assert ref.std() > 1e-4                      # the outputs differ between classes: a real comparison
    np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-5 + 1e-3 * np.abs(ref).max())
