"""Rows of tests/bad_argument_table.py for perfkit.onnx (issue 10, helper A1): load, check, network_from,
is_onnx and max_batch_size, with a tiny ONNX file written into the World's folder."""
from __future__ import annotations

import os

import numpy as np

from bad_argument_table import case
from bad_argument_values import COUNT, NETWORK, Lazy, family

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:          # the rows need onnx (the test extra has it)
    onnx = None


def tiny_model():
    w = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def model_path(w) -> str:
    path = os.path.join(w.tmp, "tiny.onnx")
    if not os.path.exists(path):
        onnx.save(tiny_model(), path)
    return path


def _onnx_call(fn_name: str):
    def call(w, kw):
        import perfkit.onnx as po
        return getattr(po, fn_name)(**kw)
    return call


MODEL = family(none=None, number=3, list=[1, 2], text_file=Lazy(lambda w: w.text_file),
               folder=Lazy(lambda w: w.empty_dir), missing=Lazy(lambda w: os.path.join(w.tmp, "missing.onnx")),
               not_onnx_bytes=b"\x00\x01not onnx", empty_bytes=b"",
               truncated=Lazy(lambda w: open(model_path(w), "rb").read()[:40]),
               text_path_not_onnx=Lazy(lambda w: _renamed(w)))
BATCH = family(text="N", zero=0, negative=-2, float=2.5, bool=True, list=[1])
SHAPES = family(text="x", list=[(4,)], bad_dim={"x": (0,)}, float_dim={"x": (2.5,)}, key={3: (4,)},
                scalar_value={"x": 4})


def _renamed(w) -> str:
    path = os.path.join(w.tmp, "notes.onnx")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write("not an onnx model\n")
    return path


if onnx is not None:
    GOOD = {"model": Lazy(model_path), "batch": "auto"}
    case("load", _onnx_call("load"), {**GOOD, "name": None, "input_shapes": None},
         {"model": MODEL, "batch": BATCH, "name": family(empty="", number=3), "input_shapes": SHAPES})
    case("check", _onnx_call("check"), {**GOOD, "input_shapes": None},
         {"model": MODEL, "batch": BATCH, "input_shapes": SHAPES})
    case("network_from", _onnx_call("network_from"), GOOD,
         {"model": {**MODEL, "unknown_sample": "no_such_net"}, "batch": BATCH})
    case("is_onnx", _onnx_call("is_onnx"), {"model": "x.onnx"}, {},
         free={"model": "any object is a valid question: the answer is True or False"})
    case("max_batch_size", _onnx_call("max_batch_size"), {"network": Lazy(lambda w: w.net), "default": None},
         {"network": NETWORK, "default": {k: v for k, v in COUNT.items() if k != "none"}})
