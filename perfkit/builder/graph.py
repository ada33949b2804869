"""The builder's working copy of a network: nodes over named tensors, constants held as arrays."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BuildError
from ..ops import Env, get_op
from ..ops.base import TensorSpec


@dataclass
class Node:
    name: str
    type: str
    params: dict
    weights: dict
    inputs: list
    outputs: list
    precision: str | None = None
    origin: list = field(default_factory=list)


@dataclass
class Graph:
    name: str
    nodes: list
    tensors: dict                 # name -> TensorSpec
    constants: dict               # name -> np.ndarray (no batch dimension)
    inputs: list
    outputs: list

    @classmethod
    def from_network(cls, network: Any, layer_precisions: dict | None = None) -> "Graph":
        overrides = dict(layer_precisions or {})
        unknown = sorted(set(overrides) - {layer.name for layer in network.layers})
        if unknown:
            raise BuildError(f"layer_precisions names layers that are not in network {network.name!r}: {unknown}")
        nodes, tensors, constants = [], {}, {}
        for t in network.tensors:
            tensors[t.name] = t.spec
        for layer in network.layers:
            if layer.type == "constant":
                constants[layer.outputs[0].name] = np.asarray(layer.weights["values"])
                continue
            nodes.append(Node(layer.name, layer.type, copy.deepcopy(layer.params),
                              {k: np.asarray(v) for k, v in layer.weights.items()},
                              [t.name for t in layer.inputs], [t.name for t in layer.outputs],
                              overrides.get(layer.name, layer.precision), [layer.name]))
        return cls(network.name, nodes, tensors, constants, [t.name for t in network.inputs],
                   [t.name for t in network.outputs])

    def consumers(self) -> dict:
        use: dict = {}
        for i, n in enumerate(self.nodes):
            for t in n.inputs:
                use.setdefault(t, []).append(i)
        return use


def eliminate_dead_nodes(g: Graph) -> list:
    """Removes nodes none of whose outputs reach a network output; returns their names."""
    needed = set(g.outputs)
    keep = []
    for n in reversed(g.nodes):
        if any(t in needed for t in n.outputs):
            keep.append(n)
            needed.update(n.inputs)
    keep.reverse()
    dead = [n.name for n in g.nodes if n not in keep]
    g.nodes = keep
    return dead


def fold_constants(g: Graph) -> list:
    """Computes, at build time, every node whose inputs are all constants; returns their names."""
    folded = []
    env = Env(np, "cpu")
    remaining = []
    for n in g.nodes:
        if n.inputs and all(t in g.constants for t in n.inputs):
            op = get_op(n.type)
            params = dict(n.params)
            for flag in ("data_constant", "indices_constant"):
                if flag in params:
                    params[flag] = False
            ins = [g.constants[t][None] for t in n.inputs]
            outs = [np.empty((1,) + g.tensors[t].shape, g.tensors[t].dtype) for t in n.outputs]
            op.compute(env, ins, outs, params, n.weights)
            for t, v in zip(n.outputs, outs):
                g.constants[t] = v[0]
                g.tensors[t] = TensorSpec(g.tensors[t].shape, g.tensors[t].dtype, True)
            folded.append(n.name)
        else:
            remaining.append(n)
    g.nodes = remaining
    return folded
