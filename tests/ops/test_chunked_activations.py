"""Activations and erf on arrays larger than one block (perfkit.ops.activation.CHUNK), which the CPU
computes block by block: every kind against the float64 oracle in fp32 and fp16 (where the float32 values
live in scratch), with a last block shorter than the others."""
import numpy as np
import pytest

import perfkit as pk
from onnx_op_check import check, rounded
from oracles import UNARY, activation
from perfkit.ops.activation import CHUNK

KINDS = ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "selu", "gelu", "gelu_tanh", "clip", "softplus",
         "softsign", "hard_sigmoid", "scaled_tanh"]
SHAPE = (3, CHUNK // 2 + 7)                     # 2 samples: 3 full blocks and a short one


def test_the_shape_spans_several_blocks_and_a_tail():
    n = 2 * SHAPE[0] * SHAPE[1]
    assert n > 2 * CHUNK and n % CHUNK


@pytest.mark.parametrize("kind", KINDS)
def test_activation_block_by_block(rng, kind):
    net = pk.Network("big")
    x = net.add_input("x", SHAPE)
    layer = net.add_activation(x, kind, alpha=0.3 if kind in ("leaky_relu", "elu") else None)
    net.mark_output(layer.output)
    X = rng.uniform(-4, 4, (2,) + SHAPE).astype(np.float32)
    p = layer.params
    check(net, {"x": X}, lambda prec: {layer.output.name: activation(rounded(X, prec), kind, p["alpha"], p["beta"])},
          pk.get_device("cpu"), precisions=("fp32", "fp16"))


def test_erf_block_by_block(rng):
    net = pk.Network("big_erf")
    x = net.add_input("x", SHAPE)
    layer = net.add_unary(x, "erf")
    net.mark_output(layer.output)
    X = rng.uniform(-3, 3, (2,) + SHAPE).astype(np.float32)
    check(net, {"x": X}, lambda prec: {layer.output.name: UNARY["erf"](rounded(X, prec))}, pk.get_device("cpu"),
          precisions=("fp32", "fp16"))
