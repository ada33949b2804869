"""The builder's working copy of a network: nodes over named tensors, constants held as arrays."""
from __future__ import annotations

import copy
import heapq
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
    tactic_times: dict = field(default_factory=dict)     # tactic -> ms, as the tactic choice measured them


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
        for layer in topological_order(network):
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


def topological_order(network: Any) -> list:
    """The network's layers in an order where every tensor is produced before it is read.

    ``Network.add_*`` appends layers in such an order, but ``Layer.inputs`` can be edited
    afterwards: a layer may then read a later layer's output (reordered here) or, through a cycle,
    its own (refused with the layers of the cycle named). Each layer's shapes are inferred again
    from its current inputs, so an edit that changes them is refused instead of building garbage.
    """
    layers = list(network.layers)
    producer = {}
    for layer in layers:
        for t in layer.outputs:
            producer[t.name] = layer
    known = {t.name for t in network.inputs} | set(producer)
    for layer in layers:
        if not isinstance(layer.inputs, (list, tuple)):
            raise BuildError(f"layer {layer.name!r}: inputs must be a list of tensors, not {layer.inputs!r}")
        for t in layer.inputs:
            if getattr(t, "name", None) not in known or network._tensors.get(t.name) is not t:
                raise BuildError(f"layer {layer.name!r} reads {t!r}, which is neither a network input nor the "
                                 f"output of a layer of network {network.name!r}; connect it to a tensor of this "
                                 "network")
    deps = {layer.name: {producer[t.name].name for t in layer.inputs if t.name in producer} for layer in layers}
    index = {layer.name: i for i, layer in enumerate(layers)}
    users: dict = {}
    for name, d in deps.items():
        for p in d:
            users.setdefault(p, []).append(name)
    waiting = {name: len(d) for name, d in deps.items()}
    ready = [index[n] for n, w in waiting.items() if w == 0]
    heapq.heapify(ready)                    # Kahn's algorithm, keeping the given order where it is valid
    order = []
    while ready:
        layer = layers[heapq.heappop(ready)]
        order.append(layer)
        for u in users.get(layer.name, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, index[u])
    if len(order) < len(layers):
        placed = {layer.name for layer in order}
        cycle = _find_cycle({n: d - placed for n, d in deps.items() if n not in placed})
        raise BuildError(f"network {network.name!r} has a cycle: {' -> '.join(cycle)}; layers' inputs were "
                         "edited so that a layer depends on its own output. Make every layer read only "
                         "network inputs or outputs of layers before it")
    for layer in order:
        _check_inferred_shapes(layer)
    return order


def _find_cycle(deps: dict) -> list:
    """A cycle among ``deps`` (name -> names it depends on), as names with the first repeated last."""
    start = next(n for n, d in deps.items() if d)
    path, seen = [start], {start: 0}
    while True:
        nxt = sorted(d for d in deps[path[-1]] if d in deps)[0]
        if nxt in seen:
            cycle = path[seen[nxt]:] + [nxt]
            return cycle[::-1]       # in data-flow order: producer -> consumer
        seen[nxt] = len(path)
        path.append(nxt)


def _check_inferred_shapes(layer: Any) -> None:
    op = get_op(layer.type)
    try:
        specs = op.infer(layer.params, [t.spec for t in layer.inputs], layer.weights)
    except Exception as exc:  # noqa: BLE001 - any failure means the edited inputs do not fit the layer
        raise BuildError(f"layer {layer.name!r} ({layer.type}) does not accept its current inputs "
                         f"({', '.join(f'{t.name}{t.shape}' for t in layer.inputs)}): {exc}; re-add the layer "
                         "with add_* instead of editing its inputs") from None
    got = [(tuple(s.shape), s.dtype) for s in specs]
    want = [(tuple(t.shape), t.dtype) for t in layer.outputs]
    if got != want:
        raise BuildError(f"layer {layer.name!r} ({layer.type}) now produces {got} from its current inputs, but its "
                         f"outputs were declared {want}; re-add the layer with add_* instead of editing its inputs")


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
            # the op's scratch, as a context would give it (build-time host memory, not the engine's)
            ws = op.workspace(params, [TensorSpec(g.tensors[t].shape, g.tensors[t].dtype) for t in n.inputs],
                              [TensorSpec(g.tensors[t].shape, g.tensors[t].dtype) for t in n.outputs], 1, "cpu")
            op.compute(Env(np, "cpu", np.empty(ws, np.uint8) if ws else None), ins, outs, params, n.weights)
            for t, v in zip(n.outputs, outs):
                g.constants[t] = v[0]
                g.tensors[t] = TensorSpec(g.tensors[t].shape, g.tensors[t].dtype, True)
            folded.append(n.name)
        else:
            remaining.append(n)
    g.nodes = remaining
    return folded
