"""A transformer encoder block from matrix multiplies, softmax, and layer norm built of reduce and
element-wise layers (no dedicated attention or normalisation layer, as in TensorRT 5)."""
from __future__ import annotations

import math

import numpy as np

from ..arguments import positive_int
from ..errors import NetworkDefinitionError
from ..network import Network
from ._init import check_weight_memory, seeded, small


def _linear(net, x, w, b, name):
    y = net.add_matrix_multiply(x, net.add_constant(w, name=f"{name}_w").output, name=f"{name}_matmul").output
    return net.add_elementwise(y, net.add_constant(b.reshape(1, -1), name=f"{name}_b").output, "sum",
                               name=f"{name}_bias").output


def _layer_norm(net, x, d, rng, name, eps=1e-5):
    mean = net.add_reduce(x, "avg", axes=-1, keep_dims=True, name=f"{name}_mean").output
    xc = net.add_elementwise(x, mean, "sub", name=f"{name}_center").output
    sq = net.add_elementwise(xc, xc, "prod", name=f"{name}_square").output
    var = net.add_reduce(sq, "avg", axes=-1, keep_dims=True, name=f"{name}_var").output
    var = net.add_scale(var, "uniform", shift=np.array([eps], np.float32), name=f"{name}_eps").output
    std = net.add_unary(var, "sqrt", name=f"{name}_std").output
    xn = net.add_elementwise(xc, std, "div", name=f"{name}_normalize").output
    gamma = net.add_constant(rng.uniform(0.9, 1.1, (1, d)).astype(np.float32), name=f"{name}_gamma").output
    beta = net.add_constant(small(rng, (1, d), 0.02), name=f"{name}_beta").output
    y = net.add_elementwise(xn, gamma, "prod", name=f"{name}_scale").output
    return net.add_elementwise(y, beta, "sum", name=f"{name}_shift").output


def transformer_encoder(seq_len: int = 64, d_model: int = 128, heads: int = 4, d_ff: int = 512,
                        seed: int = 0) -> Network:
    """Post-norm encoder block: multi-head self-attention + residual + layer norm, then a GELU
    feed-forward network + residual + layer norm. Input ``x`` is (seq_len, d_model) per sample."""
    seq_len, d_model, heads, d_ff = (positive_int(v, f"transformer_encoder: {n}") for n, v in
                                     (("seq_len", seq_len), ("d_model", d_model), ("heads", heads), ("d_ff", d_ff)))
    if d_model % heads:
        raise NetworkDefinitionError(f"d_model={d_model} must be divisible by heads={heads}")
    check_weight_memory(4 * d_model * d_model + 2 * d_model * d_ff, "transformer_encoder")
    rng = seeded(seed, "transformer_encoder")
    dh = d_model // heads
    net = Network("transformer_encoder")
    x = net.add_input("x", (seq_len, d_model))
    s = 1.0 / math.sqrt(d_model)
    qkv = {}
    for n in ("q", "k", "v"):
        t = _linear(net, x, small(rng, (d_model, d_model), s), small(rng, (d_model,), 0.02), f"attn_{n}")
        # (S, D) -> (S, H, dh) -> (H, S, dh)
        qkv[n] = net.add_shuffle(t, reshape=(seq_len, heads, dh), second_transpose=(1, 0, 2),
                                 name=f"attn_{n}_heads").output
    scores = net.add_matrix_multiply(qkv["q"], qkv["k"], transpose_b=True, name="attn_scores").output
    scores = net.add_scale(scores, "uniform", scale=np.array([1.0 / math.sqrt(dh)], np.float32),
                           name="attn_scale").output
    probs = net.add_softmax(scores, axis=-1, name="attn_softmax").output
    ctx = net.add_matrix_multiply(probs, qkv["v"], name="attn_context").output
    ctx = net.add_shuffle(ctx, first_transpose=(1, 0, 2), reshape=(seq_len, d_model), name="attn_merge").output
    attn = _linear(net, ctx, small(rng, (d_model, d_model), s), small(rng, (d_model,), 0.02), "attn_out")
    x1 = net.add_elementwise(x, attn, "sum", name="attn_residual").output
    x1 = _layer_norm(net, x1, d_model, rng, "ln1")
    h = _linear(net, x1, small(rng, (d_model, d_ff), s), small(rng, (d_ff,), 0.02), "ffn_in")
    h = net.add_activation(h, "gelu", name="ffn_gelu").output
    h = _linear(net, h, small(rng, (d_ff, d_model), 1.0 / math.sqrt(d_ff)), small(rng, (d_model,), 0.02), "ffn_out")
    x2 = net.add_elementwise(x1, h, "sum", name="ffn_residual").output
    net.mark_output(_layer_norm(net, x2, d_model, rng, "ln2"), "y")
    return net
