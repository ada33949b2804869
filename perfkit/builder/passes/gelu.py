"""GELU written out in element-wise layers -> one GELU activation.

Exporters below ONNX opset 20 (PyTorch's ``nn.GELU``) write ``x * (1 + erf(x / sqrt 2)) * 0.5`` as five
layers: Scale (x / sqrt 2) -> Unary erf -> Scale (+ 1) -> ElementWise prod with x -> Scale (x 0.5). Each is a
pass over the activation; one GELU activation is one pass (and an epilogue the MLP rules can absorb).
TensorRT's builder makes the same fusion.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Fusion, Rejection, View, fused, same_precision

_NEUTRAL = {"scale": 1.0, "shift": 0.0, "power": 1.0}


def _uniform_scale(node, **want) -> bool:
    """A uniform Scale whose scale, shift and power are ``want`` (neutral where not named), to float32 precision."""
    if node is None or node.type != "scale" or node.params.get("mode") != "uniform":
        return False
    for k, neutral in _NEUTRAL.items():
        w = node.weights.get(k)
        value = want.get(k, neutral)
        if w is None:
            if value != neutral:
                return False
        elif np.size(w) != 1 or not math.isclose(float(np.ravel(w)[0]), value, rel_tol=1e-6, abs_tol=1e-7):
            return False
    return True


def gelu_erf(g, node, view: View, cfg):
    """Scale (1/sqrt 2) -> erf -> Scale (+1) -> prod with the Scale's input -> Scale (x 0.5) -> one GELU."""
    if not _uniform_scale(node, scale=1 / math.sqrt(2)):
        return None
    x = node.inputs[0]
    chain, why = [node], None
    for check in (lambda n: n.type == "unary" and n.params.get("op") == "erf",
                  lambda n: _uniform_scale(n, shift=1.0),
                  lambda n: n.type == "elementwise" and n.params.get("op") == "prod" and x in n.inputs,
                  lambda n: _uniform_scale(n, scale=0.5)):
        nxt, why = view.next(chain[-1])
        if nxt is None or not check(nxt):
            if len(chain) >= 3 and nxt is None:           # the GELU shape up to here, cut by another reader
                return Rejection([n.name for n in chain], f"{chain[-1].name!r}: {why}")
            return None
        chain.append(nxt)
    matched = [n.name for n in chain]
    why = same_precision(chain)
    if why:
        return Rejection(matched, why)
    params = {"activation": "gelu", "alpha": 0.0, "beta": 0.0}
    return Fusion(chain, fused(matched, "activation", params, {}, [x], chain[-1].outputs, chain),
                  detail="x/sqrt2, erf, +1, *x, *0.5 written out -> one GELU")
