"""The models of benchmarks/cpu_vs_onnxruntime.py, each built twice from the same weights: as an ONNX
graph (onnx.helper, a symbolic leading batch dimension ``N``) and as the equivalent perfkit Network
(the per-sample shapes, the batch implicit). The perfkit side is used while ``perfkit.onnx.load`` is
missing, or when asked for (``--via network``).

- ``mlp``: Gemm + Relu stages (1024 -> 2048 -> 2048 -> 1000 by default).
- ``resnet``: a ResNet with batch norm and residuals: ResNet-50 (bottlenecks 3-4-6-3, 224x224) by
  default, ``resnet18`` basic blocks 2-2-2-2; batch norm as BatchNormalization nodes (ONNX) and
  per-channel Scale layers (perfkit), which both engines fold into the convolutions.
- ``transformer``: a post-norm encoder block (multi-head self-attention, GELU feed-forward,
  LayerNormalization), sequence 128, width 256, 4 heads, feed-forward 1024.
"""
from __future__ import annotations

import math

import numpy as np

OPSET = 20          # Gelu (20) and LayerNormalization (17) as single nodes


class Weights:
    """Seeded float32 weights, named as the ONNX initializers are."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.values: dict = {}

    def normal(self, name: str, shape: tuple, std: float) -> str:
        self.values[name] = (self.rng.standard_normal(shape) * std).astype(np.float32)
        return name

    def uniform(self, name: str, shape: tuple, lo: float, hi: float) -> str:
        self.values[name] = self.rng.uniform(lo, hi, shape).astype(np.float32)
        return name

    def const(self, name: str, value) -> str:
        self.values[name] = np.asarray(value)
        return name


def _model(nodes: list, w: Weights, inp: tuple, out: str, name: str, out_shape: tuple):
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(v, k) for k, v in w.values.items()]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *inp])
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", *out_shape])
    graph = helper.make_graph(nodes, name, [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="perfkit-bench")
    model.ir_version = 10
    return model


# ---------------------------------------------------------------------------------------------- MLP
def mlp_onnx(widths=(1024, 2048, 2048, 1000), seed: int = 0):
    from onnx import helper
    w, nodes, x = Weights(seed), [], "input"
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        w.normal(f"fc{i}.weight", (b, a), math.sqrt(2.0 / a))
        w.normal(f"fc{i}.bias", (b,), 0.02)
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [f"fc{i}"], name=f"fc{i}", transB=1))
        x = f"fc{i}"
        if i < len(widths) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}"], name=f"relu{i}"))
            x = f"relu{i}"
    return _model(nodes, w, (widths[0],), x, "mlp", (widths[-1],)), w.values


def mlp_network(widths=(1024, 2048, 2048, 1000), seed: int = 0):
    import perfkit as pk
    _, v = mlp_onnx(widths, seed)
    net = pk.Network("mlp")
    x = net.add_input("input", (widths[0],))
    for i in range(1, len(widths)):
        x = net.add_fully_connected(x, widths[i], v[f"fc{i}.weight"], v[f"fc{i}.bias"], name=f"fc{i}").output
        if i < len(widths) - 1:
            x = net.add_activation(x, "relu", name=f"relu{i}").output
    net.mark_output(x, f"fc{len(widths) - 1}")
    return net


# ------------------------------------------------------------------------------------------- ResNet
RESNETS = {"resnet50": ("bottleneck", (3, 4, 6, 3)), "resnet18": ("basic", (2, 2, 2, 2))}


def _resnet_plan(depth: str):
    """(kind, name, cin, cout, kernel, stride, relu, residual-of) per conv, and the stage wiring."""
    kind, blocks = RESNETS[depth]
    expansion = 4 if kind == "bottleneck" else 1
    convs = [("stem", 3, 64, 7, 2)]
    layout = []
    cin = 64
    for s, n in enumerate(blocks):
        width = 64 * 2 ** s
        for b in range(n):
            stride = 2 if b == 0 and s > 0 else 1
            p = f"layer{s + 1}.{b}"
            cout = width * expansion
            if kind == "bottleneck":
                body = [(f"{p}.conv1", cin, width, 1, 1), (f"{p}.conv2", width, width, 3, stride),
                        (f"{p}.conv3", width, cout, 1, 1)]
            else:
                body = [(f"{p}.conv1", cin, width, 3, stride), (f"{p}.conv2", width, cout, 3, 1)]
            proj = (f"{p}.downsample", cin, cout, 1, stride) if stride != 1 or cin != cout else None
            convs += body + ([proj] if proj else [])
            layout.append((p, body, proj))
            cin = cout
    return convs, layout, cin


def _resnet_weights(depth: str, classes: int, seed: int) -> Weights:
    convs, _, cin = _resnet_plan(depth)
    w = Weights(seed)
    for name, ci, co, k, _ in convs:
        w.normal(f"{name}.weight", (co, ci, k, k), math.sqrt(2.0 / (ci * k * k)))
        w.uniform(f"{name}.bn.scale", (co,), 0.8, 1.2)
        w.normal(f"{name}.bn.bias", (co,), 0.05)
        w.normal(f"{name}.bn.mean", (co,), 0.05)
        w.uniform(f"{name}.bn.var", (co,), 0.8, 1.2)
    w.normal("fc.weight", (classes, cin), math.sqrt(1.0 / cin))
    w.normal("fc.bias", (classes,), 0.02)
    return w


def resnet_onnx(depth: str = "resnet50", image: int = 224, classes: int = 1000, seed: int = 0):
    from onnx import helper
    _, layout, _ = _resnet_plan(depth)
    w = _resnet_weights(depth, classes, seed)
    nodes = []

    def conv_bn(x, name, k, stride, relu):
        nodes.append(helper.make_node("Conv", [x, f"{name}.weight"], [f"{name}.conv"], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        nodes.append(helper.make_node("BatchNormalization", [f"{name}.conv", f"{name}.bn.scale", f"{name}.bn.bias",
                                                             f"{name}.bn.mean", f"{name}.bn.var"],
                                      [f"{name}.bn"], name=f"{name}.bn", epsilon=1e-5))
        if not relu:
            return f"{name}.bn"
        nodes.append(helper.make_node("Relu", [f"{name}.bn"], [f"{name}.relu"], name=f"{name}.relu"))
        return f"{name}.relu"

    x = conv_bn("input", "stem", 7, 2, True)
    nodes.append(helper.make_node("MaxPool", [x], ["maxpool"], name="maxpool", kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x = "maxpool"
    for p, body, proj in layout:
        y = x
        for i, (name, _, _, k, stride) in enumerate(body):
            y = conv_bn(y, name, k, stride, i < len(body) - 1)
        sc = conv_bn(x, proj[0], 1, proj[4], False) if proj else x
        nodes.append(helper.make_node("Add", [y, sc], [f"{p}.add"], name=f"{p}.add"))
        nodes.append(helper.make_node("Relu", [f"{p}.add"], [f"{p}.out"], name=f"{p}.relu"))
        x = f"{p}.out"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="avgpool"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
    return _model(nodes, w, (3, image, image), "logits", depth, (classes,)), w.values


def resnet_network(depth: str = "resnet50", image: int = 224, classes: int = 1000, seed: int = 0):
    import perfkit as pk
    _, layout, _ = _resnet_plan(depth)
    v = _resnet_weights(depth, classes, seed).values
    net = pk.Network(depth)

    def conv_bn(x, name, k, stride, relu):
        co = v[f"{name}.weight"].shape[0]
        x = net.add_convolution(x, co, k, v[f"{name}.weight"], None, stride=stride, padding=k // 2, name=name).output
        scale = v[f"{name}.bn.scale"] / np.sqrt(v[f"{name}.bn.var"] + 1e-5)
        shift = v[f"{name}.bn.bias"] - v[f"{name}.bn.mean"] * scale
        x = net.add_scale(x, "channel", shift=shift, scale=scale, name=f"{name}.bn").output
        return net.add_activation(x, "relu", name=f"{name}.relu").output if relu else x

    x = net.add_input("input", (3, image, image))
    x = conv_bn(x, "stem", 7, 2, True)
    x = net.add_pooling(x, "max", 3, 2, padding=1, name="maxpool").output
    for p, body, proj in layout:
        y = x
        for i, (name, _, _, k, stride) in enumerate(body):
            y = conv_bn(y, name, k, stride, i < len(body) - 1)
        sc = conv_bn(x, proj[0], 1, proj[4], False) if proj else x
        y = net.add_elementwise(y, sc, "sum", name=f"{p}.add").output
        x = net.add_activation(y, "relu", name=f"{p}.relu").output
    x = net.add_reduce(x, "avg", axes=(1, 2), keep_dims=True, name="avgpool").output
    x = net.add_fully_connected(x, classes, v["fc.weight"], v["fc.bias"], name="fc").output
    net.mark_output(x, "logits")
    return net


# -------------------------------------------------------------------------------------- Transformer
def _transformer_weights(d: int, ff: int, seed: int) -> Weights:
    w = Weights(seed)
    for n in ("q", "k", "v", "o"):
        w.normal(f"attn.{n}.weight", (d, d), 1.0 / math.sqrt(d))
        w.normal(f"attn.{n}.bias", (d,), 0.02)
    w.normal("ffn.in.weight", (d, ff), 1.0 / math.sqrt(d))
    w.normal("ffn.in.bias", (ff,), 0.02)
    w.normal("ffn.out.weight", (ff, d), 1.0 / math.sqrt(ff))
    w.normal("ffn.out.bias", (d,), 0.02)
    for n in ("ln1", "ln2"):
        w.uniform(f"{n}.weight", (d,), 0.9, 1.1)
        w.normal(f"{n}.bias", (d,), 0.02)
    return w


def transformer_onnx(seq: int = 128, d: int = 256, heads: int = 4, ff: int = 1024, seed: int = 0):
    from onnx import helper
    w = _transformer_weights(d, ff, seed)
    dh = d // heads
    w.const("heads_shape", np.array([0, seq, heads, dh], np.int64))
    w.const("merge_shape", np.array([0, seq, d], np.int64))
    w.const("attn_scale", np.array(1.0 / math.sqrt(dh), np.float32))
    nodes = []

    def linear(x, name):
        nodes.append(helper.make_node("MatMul", [x, f"{name}.weight"], [f"{name}.mm"], name=f"{name}.matmul"))
        nodes.append(helper.make_node("Add", [f"{name}.mm", f"{name}.bias"], [name], name=f"{name}.add"))
        return name

    heads_of = {}
    for n, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        t = linear("input", f"attn.{n}")
        nodes.append(helper.make_node("Reshape", [t, "heads_shape"], [f"{n}.split"], name=f"attn.{n}.reshape"))
        nodes.append(helper.make_node("Transpose", [f"{n}.split"], [f"{n}.heads"], name=f"attn.{n}.transpose",
                                      perm=perm))
        heads_of[n] = f"{n}.heads"
    nodes += [helper.make_node("MatMul", [heads_of["q"], heads_of["k"]], ["scores"], name="attn.scores"),
              helper.make_node("Mul", ["scores", "attn_scale"], ["scaled"], name="attn.scale"),
              helper.make_node("Softmax", ["scaled"], ["probs"], name="attn.softmax", axis=-1),
              helper.make_node("MatMul", ["probs", heads_of["v"]], ["context"], name="attn.context"),
              helper.make_node("Transpose", ["context"], ["context.t"], name="attn.merge.transpose", perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["context.t", "merge_shape"], ["merged"], name="attn.merge.reshape")]
    a = linear("merged", "attn.o")
    nodes.append(helper.make_node("Add", ["input", a], ["res1"], name="attn.residual"))
    nodes.append(helper.make_node("LayerNormalization", ["res1", "ln1.weight", "ln1.bias"], ["ln1"], name="ln1",
                                  axis=-1, epsilon=1e-5))
    h = linear("ln1", "ffn.in")
    nodes.append(helper.make_node("Gelu", [h], ["gelu"], name="ffn.gelu"))
    h = linear("gelu", "ffn.out")
    nodes.append(helper.make_node("Add", ["ln1", h], ["res2"], name="ffn.residual"))
    nodes.append(helper.make_node("LayerNormalization", ["res2", "ln2.weight", "ln2.bias"], ["output"], name="ln2",
                                  axis=-1, epsilon=1e-5))
    return _model(nodes, w, (seq, d), "output", "transformer", (seq, d)), w.values


def transformer_network(seq: int = 128, d: int = 256, heads: int = 4, ff: int = 1024, seed: int = 0):
    import perfkit as pk
    v = _transformer_weights(d, ff, seed).values
    dh = d // heads
    net = pk.Network("transformer")
    x = net.add_input("input", (seq, d))

    def linear(x, name):
        y = net.add_matrix_multiply(x, net.add_constant(v[f"{name}.weight"], name=f"{name}.w").output,
                                    name=f"{name}.matmul").output
        b = net.add_constant(v[f"{name}.bias"].reshape(1, -1), name=f"{name}.b").output
        return net.add_elementwise(y, b, "sum", name=f"{name}.add").output

    def layer_norm(x, name):
        mean = net.add_reduce(x, "avg", axes=-1, keep_dims=True, name=f"{name}.mean").output
        xc = net.add_elementwise(x, mean, "sub", name=f"{name}.center").output
        sq = net.add_elementwise(xc, xc, "prod", name=f"{name}.square").output
        var = net.add_reduce(sq, "avg", axes=-1, keep_dims=True, name=f"{name}.var").output
        var = net.add_scale(var, "uniform", shift=np.array([1e-5], np.float32), name=f"{name}.eps").output
        std = net.add_unary(var, "sqrt", name=f"{name}.std").output
        xn = net.add_elementwise(xc, std, "div", name=f"{name}.normalize").output
        g = net.add_constant(v[f"{name}.weight"].reshape(1, -1), name=f"{name}.gamma").output
        b = net.add_constant(v[f"{name}.bias"].reshape(1, -1), name=f"{name}.beta").output
        return net.add_elementwise(net.add_elementwise(xn, g, "prod", name=f"{name}.scale").output, b, "sum",
                                   name=f"{name}.shift").output

    hv = {}
    for n in ("q", "k", "v"):
        t = linear(x, f"attn.{n}")
        hv[n] = net.add_shuffle(t, reshape=(seq, heads, dh), second_transpose=(1, 0, 2), name=f"attn.{n}.heads").output
    s = net.add_matrix_multiply(hv["q"], hv["k"], transpose_b=True, name="attn.scores").output
    s = net.add_scale(s, "uniform", scale=np.array([1.0 / math.sqrt(dh)], np.float32), name="attn.scale").output
    p = net.add_softmax(s, axis=-1, name="attn.softmax").output
    c = net.add_matrix_multiply(p, hv["v"], name="attn.context").output
    c = net.add_shuffle(c, first_transpose=(1, 0, 2), reshape=(seq, d), name="attn.merge").output
    a = linear(c, "attn.o")
    x1 = layer_norm(net.add_elementwise(x, a, "sum", name="attn.residual").output, "ln1")
    h = net.add_activation(linear(x1, "ffn.in"), "gelu", name="ffn.gelu").output
    h = linear(h, "ffn.out")
    net.mark_output(layer_norm(net.add_elementwise(x1, h, "sum", name="ffn.residual").output, "ln2"), "output")
    return net


MODELS = {"mlp": (mlp_onnx, mlp_network), "resnet": (resnet_onnx, resnet_network),
          "transformer": (transformer_onnx, transformer_network)}
