"""Reduce fusions: average over H and W becomes pooling; five reduction-operation fusions."""
from __future__ import annotations

from .base import Fusion, Rejection, View, clone, fused, same_precision


def reduce_to_pooling(g, node, view: View, cfg):
    """Reduce avg over H and W of a CHW input, keeping dims -> average Pooling over the whole plane."""
    if node.type != "reduce" or node.params["op"] != "avg" or node.params.get("first_transpose"):
        return None
    shape = g.tensors[node.inputs[0]].shape
    if len(shape) != 3 or node.params["axes"] != [1, 2]:
        return None
    if not node.params["keep_dims"]:
        return Rejection([node.name], "the reduce does not keep dimensions, so it is not a pooling")
    h, w = shape[1], shape[2]
    params = {"pool": "avg", "window": [h, w], "stride": [h, w], "padding": [0, 0], "exclude_padding": True,
              "tactic": "strided"}
    new = fused([node.name], "pooling", params, {}, node.inputs, node.outputs, [node])
    return Fusion([node], new, detail=f"average pooling with a {h}x{w} window")


def _pair(first_type, first_ok, second_ok, new_op, rule_doc):
    def rule(g, node, view: View, cfg):
        if node.type != first_type or not first_ok(node):
            return None
        nxt, _ = view.next(node)
        if nxt is None or not second_ok(nxt, node):
            return None
        matched = [node.name, nxt.name]
        why = same_precision([node, nxt])
        if why:
            return Rejection(matched, why)
        reducer = nxt if nxt.type == "reduce" else node
        new = clone(reducer)
        new.params["op"] = new_op
        return Fusion([node, nxt], fused(matched, "reduce", new.params, {}, node.inputs[:1], nxt.outputs, [node, nxt]),
                      detail=f"one {new_op} reduction")
    rule.__doc__ = rule_doc
    return rule


def _reduce_op(op):
    return lambda n, prev=None: n.type == "reduce" and n.params["op"] == op


def _unary(op):
    return lambda n, prev=None: n.type == "unary" and n.params["op"] == op


l1_norm = _pair("unary", _unary("abs"), _reduce_op("sum"), "l1_norm", "abs + sum -> L1 norm")
log_sum = _pair("reduce", _reduce_op("sum"), _unary("log"), "log_sum", "sum + log -> LogSum")
log_sum_exp = _pair("unary", _unary("exp"), _reduce_op("log_sum"), "log_sum_exp", "exp + LogSum -> LogSumExp")
l2_norm = _pair("reduce", _reduce_op("sum_squares"), _unary("sqrt"), "l2_norm", "sum of squares + sqrt -> L2 norm")


def sum_squares(g, node, view: View, cfg):
    """x * x (an element-wise product of a tensor with itself) + sum -> sum of squares."""
    if node.type != "elementwise" or node.params["op"] != "prod" or node.inputs[0] != node.inputs[1]:
        return None
    nxt = view.follow(node, "elementwise", "reduce")
    if nxt is None:
        return None
    matched = [node.name, nxt.name]
    if nxt.params["op"] != "sum":
        return Rejection(matched, f"the reduce is {nxt.params['op']}; only a sum of squares fuses")
    why = same_precision([node, nxt])
    if why:
        return Rejection(matched, why)
    new = clone(nxt)
    new.params["op"] = "sum_squares"
    return Fusion([node, nxt], fused(matched, "reduce", new.params, {}, node.inputs[:1], nxt.outputs, [node, nxt]))
