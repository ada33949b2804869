"""The builder's precision pass: each layer's storage dtype and the reformat layers between precisions.

Storage dtypes, tolerances and weight conversion live in :mod:`perfkit.precision`.
"""
from __future__ import annotations

from ..ops.base import TensorSpec
from ..precision import STORAGE, convert_weight
from .graph import Graph, Node


def assign_precision(g: Graph, default: str) -> list:
    """Sets every node's precision and storage dtypes; inserts reformat nodes where dtypes differ.

    Network inputs and outputs keep their declared dtype; a reformat layer converts them to and
    from the layers' storage dtype, as TensorRT does. Returns build-log rows (rule, matched, produced).
    """
    rows = []
    new_nodes: list = []
    converted: dict = {}                     # (tensor, dtype) -> tensor holding the converted values
    output_dtypes = {t: g.tensors[t].dtype for t in g.outputs}
    for n in g.nodes:
        n.precision = n.precision or default
        dtype = STORAGE[n.precision]
        new_inputs = []
        for t in n.inputs:
            spec = g.tensors[t]
            if "float" not in spec.dtype or spec.dtype == dtype:
                new_inputs.append(t)
                continue
            key = (t, dtype)
            if key not in converted:
                name = f"{t} [{n.precision}]"
                if t in g.constants:
                    g.constants[name] = convert_weight(g.constants[t], n.precision)
                    g.tensors[name] = TensorSpec(spec.shape, dtype, True)
                else:
                    g.tensors[name] = TensorSpec(spec.shape, dtype)
                    new_nodes.append(Node(f"reformat {t} -> {n.precision}", "identity", {"dtype": dtype}, {},
                                          [t], [name], n.precision, []))
                    rows.append(("reformat", t, new_nodes[-1].name, f"{spec.dtype} -> {dtype} for {n.name}"))
                converted[key] = name
            new_inputs.append(converted[key])
        n.inputs = new_inputs
        n.weights = {k: convert_weight(v, n.precision) for k, v in n.weights.items()}
        for i, t in enumerate(n.outputs):
            spec = g.tensors[t]
            if "float" in spec.dtype:
                g.tensors[t] = TensorSpec(spec.shape, dtype)
        new_nodes.append(n)
    # outputs back to their declared dtype
    g.nodes = new_nodes
    for t, declared in output_dtypes.items():
        spec = g.tensors[t]
        if spec.dtype == declared:
            continue
        producer = next(n for n in g.nodes if t in n.outputs)
        internal = f"{t} [{producer.precision}]"
        producer.outputs = [internal if o == t else o for o in producer.outputs]
        for n in g.nodes:
            n.inputs = [internal if i == t else i for i in n.inputs]
        g.tensors[internal] = spec
        g.tensors[t] = TensorSpec(spec.shape, declared)
        g.nodes.append(Node(f"reformat {t} -> {declared}", "identity", {"dtype": declared}, {}, [internal], [t],
                            "fp32", []))
        rows.append(("reformat", producer.name, g.nodes[-1].name, f"{spec.dtype} -> {declared} for output {t}"))
    return rows
