"""A BERT-style encoder as exporters write it: int64 token ids and attention mask inputs, an embedding Gather,
position ids from ConstantOfShape/Range over Shape(input_ids) (the batch a marker, folded at import), the mask
turned into additive -10000s with Unsqueeze/Cast/Sub/Mul, attention with Where on a run-time condition,
LayerNormalization and a tanh-GELU; compared with onnxruntime at several batch sizes."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import perfkit as pk  # noqa: E402
import perfkit.onnx as po  # noqa: E402

VOCAB, SEQ, DIM, HEADS = 50, 12, 32, 4


def bert_like():
    rng = np.random.default_rng(7)
    inits, nodes = [], []

    def w(name, shape, scale=0.2):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def c(name, value, dtype=np.int64):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def n(op, ins, name, **kw):
        nodes.append(helper.make_node(op, ins, [name], name=name, **kw))
        return name

    dh = DIM // HEADS
    shape = n("Shape", ["input_ids"], "ids_shape")
    seq = n("Gather", [shape, c("one_i", 1)], "seq_len", axis=0)
    pos = n("Range", [c("zero_i", 0), seq, c("step", 1)], "pos_range")
    pos = n("Unsqueeze", [pos, c("ax0", [0])], "pos_ids")
    pos = n("Expand", [pos, shape], "pos_ids_expanded")
    emb = n("Gather", [w("word_emb", (VOCAB, DIM)), "input_ids"], "word_embeddings", axis=0)
    pemb = n("Gather", [w("pos_emb", (SEQ, DIM)), pos], "position_embeddings", axis=0)
    h = n("Add", [emb, pemb], "embeddings")
    h = n("LayerNormalization", [h, w("ln0.g", (DIM,), 0.1), w("ln0.b", (DIM,), 0.1)], "emb_ln", axis=-1)
    m = n("Unsqueeze", ["attention_mask", c("ax12", [1, 2])], "mask_4d")
    m = n("Cast", [m], "mask_float", to=TensorProto.FLOAT)
    m = n("Sub", [c("one_f", 1.0, np.float32), m], "mask_inverted")
    m = n("Mul", [m, c("neg", -10000.0, np.float32)], "mask_additive")
    batch = n("Unsqueeze", [n("Gather", [shape, c("zero_g", 0)], "batch", axis=0), c("ax0b", [0])], "batch_1d")
    split = n("Concat", [batch, c("heads", [-1, HEADS, dh])], "split_shape", axis=0)
    heads = {}
    for p, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        t = n("MatMul", [h, w(f"{p}.w", (DIM, DIM))], f"{p}_proj")
        t = n("Add", [t, w(f"{p}.b", (DIM,))], f"{p}_bias")
        heads[p] = n("Transpose", [n("Reshape", [t, split], f"{p}_split")], f"{p}_heads", perm=perm)
    s = n("Div", [n("MatMul", [heads["q"], heads["k"]], "scores"), c("sqrt_dh", np.sqrt(dh), np.float32)], "scaled")
    s = n("Add", [s, m], "masked")
    keep = n("Greater", ["attention_mask", c("zero_m", 0)], "keep")
    keep = n("Unsqueeze", [keep, c("ax12b", [1, 2])], "keep_4d")
    s = n("Where", [keep, s, c("floor", -1e4, np.float32)], "masked_where")
    p = n("Softmax", [s], "probs", axis=-1)
    a = n("Transpose", [n("MatMul", [p, heads["v"]], "context")], "context_t", perm=[0, 2, 1, 3])
    a = n("Reshape", [a, n("Concat", [batch, c("merge", [-1, DIM])], "merge_shape", axis=0)], "context_merged")
    a = n("Add", [n("MatMul", [a, w("o.w", (DIM, DIM))], "out_proj"), w("o.b", (DIM,))], "out_bias")
    h = n("LayerNormalization", [n("Add", [h, a], "res1"), w("ln1.g", (DIM,), 0.1), w("ln1.b", (DIM,), 0.1)],
          "ln1", axis=-1)
    f = n("Gelu", [n("MatMul", [h, w("f1.w", (DIM, 2 * DIM))], "ffn1")], "gelu", approximate="tanh")
    f = n("MatMul", [f, w("f2.w", (2 * DIM, DIM))], "ffn2")
    n("LayerNormalization", [n("Add", [h, f], "res2"), w("ln2.g", (DIM,), 0.1), w("ln2.b", (DIM,), 0.1)],
      "hidden", axis=-1)
    g = helper.make_graph(nodes, "bert_like",
                          [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", SEQ]),
                           helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", SEQ])],
                          [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", SEQ, DIM])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    return model


def test_bert_like_encoder_matches_onnxruntime():
    model = bert_like()
    net = po.load(model)
    assert [t.dtype for t in net.inputs] == ["int32", "int32"]
    ops = set(net.import_info.layer_ops.values())
    assert not ops & {"Shape", "Range", "Concat", "Expand"}          # shape arithmetic folded at import
    assert {"Where", "Greater", "Gelu", "LayerNormalization"} <= ops
    ctx = pk.Builder("cpu").build(net, pk.BuilderConfig(max_batch_size=3, tactics="default")).create_execution_context()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch in (1, 3):
        ids = rng.integers(0, VOCAB, (batch, SEQ), dtype=np.int64)
        mask = np.ones((batch, SEQ), np.int64)
        mask[-1, SEQ // 2:] = 0                                      # padding in the last sequence
        ref = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        y = ctx.execute({"input_ids": ids.astype(np.int32), "attention_mask": mask.astype(np.int32)})["hidden"]
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
