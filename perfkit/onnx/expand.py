"""Operators ONNX defines as functions of other operators (Shrink, Swish, MeanVarianceNormalization, ...)
and that have no converter of their own: the node is replaced by the nodes of its ONNX function body,
values renamed under the node's name, attribute references resolved, each converted (or folded) at the
function's own opset. Their layers keep the outer node's name and op type."""
from __future__ import annotations

from typing import Any


def function_body(onnx: Any, node: Any, opset: int) -> Any | None:
    """The FunctionProto that defines ``node``'s operator at ``opset``, or None."""
    if node.domain not in ("", "ai.onnx"):
        return None
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except Exception:
        return None
    if not schema.has_function:
        return None
    return schema, schema.function_body


def expanded_nodes(onnx: Any, node: Any, schema: Any, body: Any, base: str) -> list:
    """The body's nodes with values renamed (formal inputs/outputs -> the node's, internals -> ``base/...``)
    and attribute references replaced by the node's attributes (or the schema's defaults)."""
    rename = {}
    for i, formal in enumerate(body.input):
        rename[formal] = node.input[i] if i < len(node.input) else ""
    for i, formal in enumerate(body.output):
        rename[formal] = node.output[i] if i < len(node.output) else f"{base}/{formal}"
    given = {a.name: a for a in node.attribute}
    out = []
    for k, inner in enumerate(body.node):
        n = type(inner)()
        n.CopyFrom(inner)
        n.name = f"{base}/{inner.op_type}_{k}"
        for lst in (n.input, n.output):
            for j, v in enumerate(lst):
                if v:
                    lst[j] = rename.setdefault(v, f"{base}/{v}")
        attrs = []
        for a in n.attribute:
            if not a.ref_attr_name:
                attrs.append(a)
                continue
            src = given.get(a.ref_attr_name)
            if src is None:
                default = schema.attributes[a.ref_attr_name].default_value if \
                    a.ref_attr_name in schema.attributes else None
                src = default if default is not None and default.type else None
            if src is not None:
                b = type(a)()
                b.CopyFrom(src)
                b.name = a.name
                attrs.append(b)
        del n.attribute[:]
        n.attribute.extend(attrs)
        out.append(n)
    return out


def body_opset(body: Any, fallback: int) -> int:
    return next((o.version for o in body.opset_import if o.domain in ("", "ai.onnx")), fallback)
