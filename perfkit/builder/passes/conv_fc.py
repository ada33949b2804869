"""Convolution and FullyConnected fusions: ReLU, batch-norm (Scale) folding, residual sums."""
from __future__ import annotations

import numpy as np

from .base import Fusion, Rejection, View, clone, fused, same_precision


def _epilogue_busy(node) -> str | None:
    if node.params.get("activation"):
        return f"{node.name!r} already applies an activation"
    if len(node.inputs) > 1:
        return f"{node.name!r} already adds a residual"
    return None


def _relu(layer_type: str):
    def rule(g, node, view: View, cfg):
        nxt = view.follow(node, layer_type, "activation")
        if nxt is None:
            return None
        matched = [node.name, nxt.name]
        if nxt.params["activation"] != "relu":
            return Rejection(matched, f"the activation is {nxt.params['activation']}; only ReLU fuses into a {layer_type}")
        if nxt.weights:
            return Rejection(matched, "the activation carries a fused scale")
        why = (f"{node.name!r} already applies an activation" if node.params.get("activation") else None) \
            or same_precision([node, nxt])
        if why:
            return Rejection(matched, why)
        new = clone(node)
        new.params["activation"] = {"kind": "relu", "alpha": 0.0, "beta": 0.0}
        return Fusion([node, nxt], fused(matched, layer_type, new.params, new.weights, node.inputs, nxt.outputs,
                                         [node, nxt]))
    return rule


conv_relu = _relu("convolution")
fc_relu = _relu("fully_connected")


def conv_scale(g, node, view: View, cfg):
    """Convolution + Scale (uniform or per-channel) -> convolution with folded weights and bias."""
    nxt = view.follow(node, "convolution", "scale")
    if nxt is None:
        return None
    matched = [node.name, nxt.name]
    p = nxt.params
    if p["mode"] == "elementwise":
        return Rejection(matched, "the scale is element-wise; only uniform or per-channel scales fold into weights")
    if p["mode"] == "channel" and p["channel_axis"] % 3 != 0:
        return Rejection(matched, "the per-channel scale is not over the channel axis")
    power = nxt.weights.get("power")
    if power is not None and not np.all(power == power.reshape(-1)[0]):
        return Rejection(matched, "the scale has a non-constant power")
    why = _epilogue_busy(node) or (f"{node.name!r} already raises to a power" if node.params.get("power") else None) \
        or same_precision([node, nxt])
    if why:
        return Rejection(matched, why)
    k = node.params["num_output_maps"]
    s = np.broadcast_to(nxt.weights.get("scale", np.ones(1, np.float32)).astype(np.float64), (k,))
    sh = np.broadcast_to(nxt.weights.get("shift", np.zeros(1, np.float32)).astype(np.float64), (k,))
    new = clone(node)
    new.weights["kernel"] = (node.weights["kernel"].astype(np.float64) * s[:, None, None, None]).astype(np.float32)
    new.weights["bias"] = (node.weights.get("bias", np.zeros(k)).astype(np.float64) * s + sh).astype(np.float32)
    if power is not None and float(power.reshape(-1)[0]) != 1.0:
        new.params["power"] = float(power.reshape(-1)[0])
    return Fusion([node, nxt], fused(matched, "convolution", new.params, new.weights, node.inputs, nxt.outputs,
                                     [node, nxt]), detail="scale folded into the convolution's weights and bias")


def conv_sum(g, node, view: View, cfg):
    """Convolution + ElementWise sum -> convolution that adds the other operand in its epilogue."""
    nxt = view.follow(node, "convolution", "elementwise")
    if nxt is None or nxt.params["op"] != "sum":
        return None
    mine = node.outputs[0]
    others = [t for t in nxt.inputs if t != mine]
    if len(others) != 1:
        return None
    other = others[0]
    matched = [node.name, nxt.name]
    out_shape = g.tensors[mine].shape
    if tuple(g.tensors[other].shape) != tuple(out_shape):
        return Rejection(matched, f"the sum broadcasts {g.tensors[other].shape} to {out_shape}; only broadcasting "
                                  "across the batch may fuse")
    why = _epilogue_busy(node) or same_precision([node, nxt])
    if why:
        return Rejection(matched, why)
    new = clone(node)
    return Fusion([node, nxt], fused(matched, "convolution", new.params, new.weights, node.inputs + [other],
                                     nxt.outputs, [node, nxt]), detail=f"adds {other!r} in the epilogue")
