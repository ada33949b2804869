"""A few hundred mutated and malformed ONNX models (seeded): not ONNX, truncated, flipped bytes, missing
initializers and inputs, cyclic graphs, wrong types, bad attributes, unknown operators and opsets. Each
one either imports or raises a PerfkitError with a message; nothing else may escape (load and check)."""
from __future__ import annotations

import random

import pytest

pytest.importorskip("onnx")
from onnx import AttributeProto, TensorProto, helper, numpy_helper  # noqa: E402

import perfkit as pk  # noqa: E402
import perfkit.onnx as po  # noqa: E402
from perfkit.onnx import samples  # noqa: E402

BASES = [samples.mlp((8, 6, 4)), samples.resnet_cnn(image=8, widths=(4, 8)),
         samples.transformer_block(seq=4, dim=8, heads=2, ffn=16)]


def _copy(m):
    c = type(m)()
    c.CopyFrom(m)
    return c


def _mutations(rng: random.Random):
    """(label, model or bytes) pairs, a few per kind per base model."""
    for base in BASES:
        data = base.SerializeToString()
        yield "random bytes", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        yield "text", b"this is not an onnx model\n" * rng.randrange(1, 5)
        for _ in range(20):
            yield "truncated", data[:rng.randrange(1, len(data))]
        for _ in range(20):
            b = bytearray(data)
            for _ in range(rng.randrange(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            yield "flipped bytes", bytes(b)
        g = base.graph
        for _ in range(6):
            m = _copy(base)
            del m.graph.initializer[rng.randrange(len(m.graph.initializer))]
            yield "missing initializer", m
        for _ in range(6):
            m = _copy(base)
            n = m.graph.node[rng.randrange(len(g.node))]
            n.input[rng.randrange(len(n.input))] = "nowhere"
            yield "undefined input", m
        for _ in range(6):
            m = _copy(base)
            i, j = sorted(rng.sample(range(len(g.node)), 2))
            m.graph.node[i].input[0] = m.graph.node[j].output[0]
            yield "cycle", m
        for _ in range(6):
            m = _copy(base)
            m.graph.input[0].type.tensor_type.elem_type = rng.choice([0, 2, 7, 8, 9, 14, 16, 99])
            yield "input type", m
        for _ in range(6):
            m = _copy(base)
            t = m.graph.initializer[rng.randrange(len(m.graph.initializer))]
            t.data_type = rng.choice([TensorProto.INT64, TensorProto.DOUBLE, TensorProto.STRING, TensorProto.BOOL,
                                      TensorProto.FLOAT16, 77])
            yield "initializer type", m
        for _ in range(6):
            m = _copy(base)
            t = m.graph.initializer[rng.randrange(len(m.graph.initializer))]
            t.dims.append(rng.choice([0, 2, 3]))
            yield "initializer dims", m
        for _ in range(6):
            m = _copy(base)
            n = m.graph.node[rng.randrange(len(g.node))]
            if n.attribute:
                a = n.attribute[rng.randrange(len(n.attribute))]
                choice = rng.randrange(4)
                if choice == 0:
                    a.type, a.s = AttributeProto.STRING, b"bogus"
                elif choice == 1 and a.type == AttributeProto.INTS:
                    a.ints[:] = [rng.randrange(-5, 0) for _ in a.ints] or [-1]
                elif choice == 2 and a.type == AttributeProto.INT:
                    a.i = rng.choice([-7, 0, 10 ** 9])
                else:
                    a.name = "no_such_attribute"
            else:
                n.attribute.append(helper.make_attribute("no_such_attribute", 3))
            yield "bad attribute", m
        for _ in range(3):
            m = _copy(base)
            m.graph.node[rng.randrange(len(g.node))].op_type = rng.choice(["NoSuchOp", "Loop", "NonZero", "Scan", ""])
            yield "operator", m
        for v in (1, 6, 9999):
            m = _copy(base)
            m.opset_import[0].version = v
            yield "opset", m
        m = _copy(base)
        del m.graph.output[:]
        yield "no outputs", m
        m = _copy(base)
        m.graph.node[0].output[0] = m.graph.node[1].output[0]
        yield "output written twice", m
        m = _copy(base)
        m.graph.node.append(helper.make_node("Relu", [g.node[-1].output[0]], [g.node[0].output[0]], name="again"))
        yield "value redefined", m
        for _ in range(3):
            m = _copy(base)
            dims = m.graph.input[0].type.tensor_type.shape.dim
            dims[rng.randrange(len(dims))].dim_value = rng.choice([0, 1, 5, 10 ** 7])
            yield "input dims", m
        m = _copy(base)
        shapes = [t for t in m.graph.initializer if t.data_type == TensorProto.INT64]
        for t in shapes:
            a = numpy_helper.to_array(t).copy()
            a[...] = rng.choice([-5, 0, 10 ** 12])
            t.CopyFrom(numpy_helper.from_array(a, t.name))
        yield "integer constants", m


CASES = list(_mutations(random.Random(20261129)))


def test_there_are_a_few_hundred_cases():
    assert len(CASES) >= 250


@pytest.mark.parametrize("kind", sorted({label for label, _ in CASES}))
def test_malformed_models_raise_only_perfkit_errors(kind):
    raised = 0
    for label, model in CASES:
        if label != kind:
            continue
        for fn in (po.load, po.check):
            try:
                result = fn(model)
            except pk.PerfkitError as exc:
                assert str(exc).strip(), f"{kind}: empty message from {type(exc).__name__}"
                raised += 1
                continue
            except Exception as exc:          # anything else is a bug
                raise AssertionError(f"{kind}: {fn.__name__} raised {type(exc).__name__}: {exc}") from exc
            if fn is po.load and kind not in ("flipped bytes",):
                pk.Builder("cpu").build(result, pk.BuilderConfig(max_batch_size=2, tactics="default"))
    if kind not in ("flipped bytes", "bad attribute", "input dims", "integer constants", "initializer dims",
                    "input type", "initializer type"):
        assert raised, f"no {kind} case was refused"


def test_messages_name_what_failed():
    with pytest.raises(po.OnnxFileError, match="not an ONNX model"):
        po.load(b"\x00\x01\x02 not onnx")
    m = _copy(BASES[0])
    del m.graph.initializer[0]
    with pytest.raises(po.OnnxFileError, match="fc1.weight.*missing initializer"):
        po.load(m)
    m = _copy(BASES[0])
    m.graph.node[0].input[0] = m.graph.node[2].output[0]
    with pytest.raises(po.OnnxFileError, match="cycle"):
        po.load(m)
    m = _copy(BASES[0])
    m.graph.node[1].op_type = "NoSuchOp"
    with pytest.raises(po.OnnxImportError, match="NoSuchOp"):
        po.load(m)
