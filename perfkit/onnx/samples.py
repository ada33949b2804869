"""Small ONNX models built with ``onnx.helper`` (deterministic weights from a seed, symbolic batch ``N``):
an MLP, a ResNet-style CNN (batch norm, residual sums, a strided projection shortcut) and a transformer
encoder block (multi-head attention whose reshapes come from Shape arithmetic, as exporters write them).
Used by the tests, ``benchmarks/cpu_vs_onnxruntime.py`` and ``data/make_sample_onnx.py``."""
from __future__ import annotations

import math

import numpy as np

from .errors import require_onnx


class _Graph:
    def __init__(self, seed: int):
        onnx = require_onnx()
        self.h, self.nh = onnx.helper, onnx.numpy_helper
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def weight(self, name: str, shape: tuple, fan_in: int | None = None, value: float | None = None) -> str:
        if value is not None:
            a = np.full(shape, value, np.float32)
        else:
            scale = math.sqrt(2.0 / (fan_in or shape[-1]))
            a = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(self.nh.from_array(a, name))
        return name

    def const(self, name: str, values, dtype=np.int64) -> str:
        self.inits.append(self.nh.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list, name: str, outputs: list | None = None, **attrs) -> str:
        outputs = outputs or [name]
        self.nodes.append(self.h.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs[0]

    def model(self, name: str, x: tuple, y: tuple, opset: int):
        TensorProto = require_onnx().TensorProto
        g = self.h.make_graph(self.nodes, name, [self.h.make_tensor_value_info(x[0], TensorProto.FLOAT, x[1])],
                              [self.h.make_tensor_value_info(y[0], TensorProto.FLOAT, y[1])], self.inits)
        m = self.h.make_model(g, opset_imports=[self.h.make_opsetid("", opset)], producer_name="perfkit.onnx.samples")
        m.ir_version = min(m.ir_version, 8)          # readable by onnxruntime releases of the last years
        return m


def mlp(sizes: tuple = (784, 512, 256, 10), seed: int = 0, opset: int = 17):
    """Gemm + Relu layers (as PyTorch exports ``nn.Linear``), a final Softmax; input ``x`` (N, sizes[0])."""
    g = _Graph(seed)
    v = "x"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        v = g.node("Gemm", [v, g.weight(f"fc{i}.weight", (b, a), a), g.weight(f"fc{i}.bias", (b,), value=0.01)],
                   f"fc{i}", transB=1)
        if i < len(sizes) - 1:
            v = g.node("Relu", [v], f"relu{i}")
    g.node("Softmax", [v], "prob", axis=-1)
    return g.model("mlp", ("x", ["N", sizes[0]]), ("prob", ["N", sizes[-1]]), opset)


def _conv_bn(g: _Graph, v: str, name: str, cin: int, cout: int, k: int, stride: int, relu: bool) -> str:
    v = g.node("Conv", [v, g.weight(f"{name}.weight", (cout, cin, k, k), cin * k * k)], name,
               kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)
    bn = [g.weight(f"{name}_bn.{p}", (cout,), value=val) for p, val in
          (("gamma", 1.0), ("beta", 0.0), ("mean", 0.0), ("var", 1.0))]
    rng = g.rng
    for t in g.inits[-4:]:          # statistics that are not the identity, so folding them matters
        a = g.nh.to_array(t).copy()
        a += rng.uniform(-0.1, 0.1, a.shape).astype(np.float32)
        if t.name.endswith("var"):
            a = np.abs(a) + 0.5
        t.CopyFrom(g.nh.from_array(a.astype(np.float32), t.name))
    v = g.node("BatchNormalization", [v] + bn, f"{name}_bn", epsilon=1e-5)
    return g.node("Relu", [v], f"{name}_relu") if relu else v


def _block(g: _Graph, v: str, name: str, cin: int, cout: int, stride: int) -> str:
    y = _conv_bn(g, v, f"{name}.conv1", cin, cout, 3, stride, True)
    y = _conv_bn(g, y, f"{name}.conv2", cout, cout, 3, 1, False)
    short = v if stride == 1 and cin == cout else _conv_bn(g, v, f"{name}.proj", cin, cout, 1, stride, False)
    y = g.node("Add", [y, short], f"{name}.add")
    return g.node("Relu", [y], f"{name}.relu")


def resnet_cnn(image: int = 32, widths: tuple = (16, 32, 64), classes: int = 10, seed: int = 0, opset: int = 17):
    """A ResNet-style CNN: stem conv+BN+ReLU and max pool, one residual block per width (strided with a
    1x1 projection shortcut after the first), global average pool, flatten, Gemm; input (N, 3, image, image)."""
    g = _Graph(seed)
    v = _conv_bn(g, "x", "stem", 3, widths[0], 3, 1, True)
    v = g.node("MaxPool", [v], "stem_pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = widths[0]
    for i, w in enumerate(widths):
        v = _block(g, v, f"layer{i + 1}", cin, w, 1 if i == 0 else 2)
        cin = w
    v = g.node("GlobalAveragePool", [v], "avgpool")
    v = g.node("Flatten", [v], "flatten", axis=1)
    g.node("Gemm", [v, g.weight("fc.weight", (classes, cin), cin), g.weight("fc.bias", (classes,), value=0.0)],
           "fc", transB=1)
    return g.model("resnet_cnn", ("x", ["N", 3, image, image]), ("fc", ["N", classes]), opset)


def transformer_block(seq: int = 16, dim: int = 64, heads: int = 4, ffn: int = 256, seed: int = 0, opset: int = 17):
    """A post-norm transformer encoder block as PyTorch exports it: Q/K/V MatMul+Add, heads split by Reshape
    to a shape computed from Shape(x) (folded at import), scaled Softmax attention, output projection,
    residual + LayerNormalization, an Erf-GELU feed-forward, residual + LayerNormalization; input (N, seq, dim)."""
    g = _Graph(seed)
    dh = dim // heads
    n = g.node("Gather", [g.node("Shape", ["x"], "shape"), g.const("zero", 0)], "batch", axis=0)
    n = g.node("Unsqueeze", [n, g.const("axes0", [0])], "batch_1d")
    split = g.node("Concat", [n, g.const("heads_shape", [seq, heads, dh])], "split_shape", axis=0)
    merge = g.node("Concat", [n, g.const("model_shape", [seq, dim])], "merge_shape", axis=0)

    def linear(v, name, a, b):
        v = g.node("MatMul", [v, g.weight(f"{name}.weight", (a, b), a)], f"{name}.matmul")
        return g.node("Add", [v, g.weight(f"{name}.bias", (b,), value=0.01)], name)

    heads_of = {}
    for p, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        t = g.node("Reshape", [linear("x", f"attn.{p}", dim, dim), split], f"attn.{p}_heads")
        heads_of[p] = g.node("Transpose", [t], f"attn.{p}_t", perm=perm)
    s = g.node("MatMul", [heads_of["q"], heads_of["k"]], "attn.scores")
    s = g.node("Div", [s, g.const("sqrt_dh", math.sqrt(dh), np.float32)], "attn.scale")
    p = g.node("Softmax", [s], "attn.softmax", axis=-1)
    a = g.node("MatMul", [p, heads_of["v"]], "attn.context")
    a = g.node("Transpose", [a], "attn.context_t", perm=[0, 2, 1, 3])
    a = g.node("Reshape", [a, merge], "attn.merge")
    a = linear(a, "attn.out", dim, dim)
    h = g.node("Add", ["x", a], "residual1")
    def layer_norm(v, name):
        return g.node("LayerNormalization", [v, g.weight(f"{name}.weight", (dim,), value=1.0),
                                             g.weight(f"{name}.bias", (dim,), value=0.0)], name, axis=-1, epsilon=1e-5)

    h = layer_norm(h, "ln1")
    f = linear(h, "ffn.fc1", dim, ffn)
    e = g.node("Div", [f, g.const("sqrt2", math.sqrt(2.0), np.float32)], "ffn.gelu_div")
    e = g.node("Erf", [e], "ffn.gelu_erf")
    e = g.node("Add", [e, g.const("one", 1.0, np.float32)], "ffn.gelu_add")
    f = g.node("Mul", [g.node("Mul", [f, e], "ffn.gelu_mul"), g.const("half", 0.5, np.float32)], "ffn.gelu")
    f = linear(f, "ffn.fc2", ffn, dim)
    h = g.node("Add", [h, f], "residual2")
    layer_norm(h, "ln2")
    return g.model("transformer_block", ("x", ["N", seq, dim]), ("ln2", ["N", seq, dim]), opset)


SAMPLES = {"mlp": mlp, "resnet_cnn": resnet_cnn, "transformer_block": transformer_block}
