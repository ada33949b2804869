"""MLP fusions (guide 2.5.3): GEMM layers with biases and activations become one MLP layer.

Creation: MatrixMultiply (2-D, constant second operand) + Activation, + constant ElementWise sum,
+ MatrixMultiply; FullyConnected + Activation, + Scale (shift only), + FullyConnected. An MLP then
absorbs following MatrixMultiply / FullyConnected / Activation / constant sums / bias Scales, and two
MLPs merge, up to 31 GEMM stages, each within the width-product limit standing for shared memory.
"""
from __future__ import annotations

import numpy as np

from ...ops.mlp import MAX_STAGES
from .base import Fusion, Rejection, View, same_precision


def _gemm_stages(g, node):
    """(stages, weights, flatten) for a GEMM-like node, or (None, why)."""
    if node.type == "fully_connected":
        w = {"w0": np.ascontiguousarray(node.weights["kernel"].T)}
        if "bias" in node.weights:
            w["b0"] = node.weights["bias"]
        return [{"activation": node.params.get("activation")}], w, True
    if node.type == "matrix_multiply":
        a, b = node.inputs
        if a in g.constants or b not in g.constants:
            return None, "only a product of a tensor by a constant matrix (second operand) forms an MLP"
        if len(g.tensors[a].shape) != 2 or g.constants[b].ndim != 2 or node.params["transpose_a"]:
            return None, "the matrix multiply is not strictly 2-D"
        m = g.constants[b]
        return [{"activation": None}], {"w0": np.ascontiguousarray(m.T if node.params["transpose_b"] else m)}, False
    if node.type == "mlp":
        return [dict(s) for s in node.params["stages"]], dict(node.weights), node.params["flatten"]
    return None, None


def _bias_of(g, node, width):
    """The bias vector a node adds to a (…, width) tensor, or (None, why)."""
    if node.type == "elementwise":
        if node.params["op"] != "sum":
            return None, None
        consts = [t for t in node.inputs if t in g.constants]
        if len(consts) != 1:
            return None, "the element-wise sum is not with a constant"
        c = g.constants[consts[0]]
        if c.shape[-1] != width or int(np.prod(c.shape)) != width:
            return None, f"the constant {c.shape} is not a bias over the last axis"
        return c.reshape(width).astype(np.float32), None
    if node.type == "scale":
        if "scale" in node.weights or "power" in node.weights or node.params["mode"] == "elementwise":
            return None, "the scale is not a bias (shift only)"
        return np.broadcast_to(node.weights["shift"].reshape(-1), (width,)).astype(np.float32), None
    return None, None


#: the most network layers an MLP's name lists in full (beyond it: the first, the last and how many were fused;
#: the label's own count, "3-layer", is the guide's: GEMM stages)
NAMED_MEMBERS = 4


def _name(n_stages, members, taken):
    """The guide's label (``2-layer MLP``) with the layers it fused, so a timeline of an imported model reads
    like the model: ``2-layer MLP (ip1 + relu1 + ip2)``; ``... #2`` where that name is taken."""
    shown = " + ".join(members) if len(members) <= NAMED_MEMBERS else \
        f"{members[0]} + ... + {members[-1]}, {len(members)} fused"
    base = f"{n_stages}-layer MLP ({shown})" if members else f"{n_stages}-layer MLP"
    name, i = base, 2
    while name in taken:
        name, i = f"{base} #{i}", i + 1
    return name


def _build(g, view, nodes, stages, weights, flatten, cfg):
    if len(stages) > MAX_STAGES:
        return Rejection([n.name for n in nodes], f"the MLP would have {len(stages)} layers; the limit is {MAX_STAGES}")
    limit = cfg.mlp_max_width_product
    for i in range(len(stages)):
        k, n = weights[f"w{i}"].shape
        if k * n > limit:
            return Rejection([n_.name for n_ in nodes], f"stage {i} multiplies widths {k} x {n} = {k * n}, over the "
                                                        f"shared-memory limit mlp_max_width_product={limit}")
    why = same_precision(nodes)
    if why:
        return Rejection([n.name for n in nodes], why)
    from ..graph import Node
    taken = {n.name for n in g.nodes if n not in nodes}
    params = {"stages": stages, "flatten": flatten,
              "widths": [int(weights["w0"].shape[0])] + [int(weights[f"w{i}"].shape[1]) for i in range(len(stages))]}
    origin = [o for n in nodes for o in n.origin]
    node = Node(_name(len(stages), origin, taken), "mlp", params, weights, nodes[0].inputs[:1], nodes[-1].outputs,
                nodes[0].precision, origin)
    return Fusion(nodes, node, detail=f"{len(stages)} GEMM stage(s): " + ", ".join(origin))


def _extend(g, view, node, nxt, stages, weights, flatten, cfg):
    """Stages after appending ``nxt`` to (stages, weights, flatten), or a Rejection / None."""
    matched = [node.name, nxt.name]
    last = len(stages) - 1
    width = weights[f"w{last}"].shape[1]
    if nxt.type == "activation":
        if nxt.weights:
            return Rejection(matched, f"{nxt.name!r} carries a fused scale")
        if stages[last].get("activation"):
            return Rejection(matched, "the last GEMM already applies an activation")
        stages[last] = {"activation": {"kind": nxt.params["activation"], "alpha": nxt.params["alpha"],
                                       "beta": nxt.params["beta"]}}
        return stages, weights, flatten
    if nxt.type in ("elementwise", "scale"):
        bias, why = _bias_of(g, nxt, width)
        if bias is None:
            return Rejection(matched, why) if why else None
        if stages[last].get("activation"):
            return Rejection(matched, "the bias comes after the activation")
        weights[f"b{last}"] = weights.get(f"b{last}", np.zeros(width, np.float32)) + bias
        return stages, weights, flatten
    more = _gemm_stages(g, nxt)
    if more[0] is None:
        return Rejection(matched, more[1]) if more[1] else None
    s2, w2, flat2 = more
    if nxt.type == "fully_connected" and not flatten:
        return Rejection(matched, "a fully connected layer after a matrix MLP flattens each sample; not row-wise")
    if nxt.type == "matrix_multiply" and flatten:
        return Rejection(matched, "a matrix multiply after a fully connected MLP is not 2-D")
    if nxt.type == "mlp" and flat2 != flatten and not (flat2 and len(g.tensors[nxt.inputs[0]].shape) == 1):
        return Rejection(matched, "the two MLPs have different layouts")
    off = len(stages)
    for i, st in enumerate(s2):
        stages.append(st)
        weights[f"w{off + i}"] = w2[f"w{i}"]
        if f"b{i}" in w2:
            weights[f"b{off + i}"] = w2[f"b{i}"]
    return stages, weights, flatten


def mlp_create(g, node, view: View, cfg):
    """MatrixMultiply or FullyConnected + (Activation | constant sum / bias Scale | another GEMM) -> MLP."""
    if node.type not in ("matrix_multiply", "fully_connected"):
        return None
    nxt, _ = view.next(node)
    if nxt is None:
        return None
    first = _gemm_stages(g, node)
    if first[0] is None:
        allowed = nxt.type in ("activation", "elementwise", "matrix_multiply")
        return Rejection([node.name, nxt.name], first[1]) if first[1] and allowed else None
    stages, weights, flatten = first
    if node.type == "fully_connected" and nxt.type in ("elementwise", "matrix_multiply"):
        return None              # not in the guide's list for fully connected layers
    if node.type == "matrix_multiply" and nxt.type in ("scale", "fully_connected"):
        return None
    if node.type == "fully_connected" and nxt.type == "activation" and nxt.params["activation"] == "relu" \
            and not stages[0].get("activation"):
        return None              # FullyConnected + ReLU is its own fusion (ip1 + relu1)
    res = _extend(g, view, node, nxt, stages, weights, flatten, cfg)
    if res is None or isinstance(res, Rejection):
        return res
    return _build(g, view, [node, nxt], *res, cfg)


def mlp_absorb(g, node, view: View, cfg):
    """MLP + (MatrixMultiply | FullyConnected | Activation | constant sum | bias Scale | MLP) -> a deeper MLP."""
    if node.type != "mlp":
        return None
    nxt, _ = view.next(node)
    if nxt is None:
        return None
    stages, weights, flatten = _gemm_stages(g, node)
    res = _extend(g, view, node, nxt, stages, weights, flatten, cfg)
    if res is None or isinstance(res, Rejection):
        return res
    return _build(g, view, [node, nxt], *res, cfg)
