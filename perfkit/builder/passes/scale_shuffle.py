"""Scale and Shuffle fusions: identity scales erased, Scale + Activation, Shuffle + Shuffle, Shuffle + Reduce."""
from __future__ import annotations

import numpy as np

from ...errors import PerfkitError
from ...ops import get_op
from ...ops.base import TensorSpec
from .base import Fusion, Rejection, View, clone, fused, same_precision


def erase_identity_scale(g, node, view: View, cfg):
    """A Scale that adds 0, multiplies by 1 and raises to the power 1 does nothing: erase it."""
    if node.type != "scale":
        return None
    neutral = {"shift": 0.0, "scale": 1.0, "power": 1.0}
    if not all(np.all(w == neutral[k]) for k, w in node.weights.items()):
        return None
    out = node.outputs[0]
    if out in view.outputs:
        return Rejection([node.name], f"its output {out!r} is a network output, so a copy must remain")
    return Fusion([node], None, erase={out: node.inputs[0]}, detail="identity scale removed")


def scale_activation(g, node, view: View, cfg):
    """Scale + Activation -> one Activation that scales its input first."""
    nxt = view.follow(node, "scale", "activation")
    if nxt is None:
        return None
    matched = [node.name, nxt.name]
    if nxt.weights:
        return Rejection(matched, f"{nxt.name!r} already carries a fused scale")
    why = same_precision([node, nxt])
    if why:
        return Rejection(matched, why)
    params = dict(nxt.params, pre_mode=node.params["mode"], pre_channel_axis=node.params["channel_axis"])
    weights = {f"pre_{k}": v for k, v in node.weights.items()}
    return Fusion([node, nxt], fused(matched, "activation", params, weights, node.inputs, nxt.outputs, [node, nxt]))


def _perm(p, rank):
    return list(p) if p else list(range(rank))


def _compose(p, q):
    """Transpose by p, then by q, as one permutation."""
    return [p[i] for i in q]


def _is_identity(p):
    return p is None or list(p) == list(range(len(p)))


def shuffle_shuffle(g, node, view: View, cfg):
    """Shuffle + Shuffle -> one Shuffle, or nothing when the two cancel out."""
    nxt = view.follow(node, "shuffle", "shuffle")
    if nxt is None:
        return None
    matched = [node.name, nxt.name]
    a, b = node.params, nxt.params
    x_shape = g.tensors[node.inputs[0]].shape
    mid_rank = len(g.tensors[node.outputs[0]].shape)
    r0 = len(x_shape)
    t1, t2 = _perm(a["first_transpose"], r0), _perm(a["second_transpose"], mid_rank)
    t3, t4 = _perm(b["first_transpose"], mid_rank), _perm(b["second_transpose"], len(g.tensors[nxt.outputs[0]].shape))
    if a["reshape"] is None and b["reshape"] is None:
        params = {"first_transpose": _compose(_compose(_compose(t1, t2), t3), t4), "reshape": None,
                  "second_transpose": None}
    elif b["reshape"] is None:
        params = {"first_transpose": t1, "reshape": list(a["resolved_reshape"]),
                  "second_transpose": _compose(_compose(t2, t3), t4)}
    elif a["reshape"] is None:
        params = {"first_transpose": _compose(_compose(t1, t2), t3), "reshape": list(b["reshape"]),
                  "second_transpose": t4}
    else:
        if not _is_identity(_compose(t2, t3)):
            return Rejection(matched, "both shuffles reshape and the first's second transpose is not the inverse of "
                                      "the second's first transpose")
        params = {"first_transpose": t1, "reshape": list(b["resolved_reshape"]), "second_transpose": t4}
    why = same_precision([node, nxt])
    if why:
        return Rejection(matched, why)
    for k in ("first_transpose", "second_transpose"):
        if _is_identity(params[k]):
            params[k] = None
    if params["reshape"] is not None and tuple(params["reshape"]) == tuple(x_shape) and params["first_transpose"] is None:
        params["reshape"] = None
    out = nxt.outputs[0]
    if params["first_transpose"] is None and params["reshape"] is None and params["second_transpose"] is None \
            and out not in view.outputs:
        return Fusion([node, nxt], None, erase={out: node.inputs[0]}, detail="the two shuffles cancel out")
    op = get_op("shuffle")
    try:
        params = op.check(params, {})
        spec = op.infer(params, [TensorSpec(tuple(x_shape))], {})[0]
    except PerfkitError as exc:       # pragma: no cover - composition keeps shapes consistent
        return Rejection(matched, f"the composed shuffle is invalid: {exc}")
    assert tuple(spec.shape) == tuple(g.tensors[out].shape)
    return Fusion([node, nxt], fused(matched, "shuffle", params, {}, node.inputs, nxt.outputs, [node, nxt]))


def shuffle_reduce(g, node, view: View, cfg):
    """Shuffle (permutation only) + Reduce with keep-dims -> one Reduce over the permuted view."""
    nxt = view.follow(node, "shuffle", "reduce")
    if nxt is None:
        return None
    matched = [node.name, nxt.name]
    if node.params["reshape"] is not None:
        return Rejection(matched, "the shuffle reshapes; only a pure permutation fuses into a reduce")
    if not nxt.params["keep_dims"]:
        return Rejection(matched, "the reduce does not keep dimensions")
    if nxt.params.get("first_transpose"):
        return Rejection(matched, f"{nxt.name!r} already permutes its input")
    why = same_precision([node, nxt])
    if why:
        return Rejection(matched, why)
    rank = len(g.tensors[node.inputs[0]].shape)
    perm = _compose(_perm(node.params["first_transpose"], rank), _perm(node.params["second_transpose"], rank))
    new = clone(nxt)
    new.params["first_transpose"] = None if _is_identity(perm) else perm
    return Fusion([node, nxt], fused(matched, "reduce", new.params, {}, node.inputs, nxt.outputs, [node, nxt]))
