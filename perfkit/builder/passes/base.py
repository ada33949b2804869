"""What a fusion rule sees and returns.

A rule is a function ``rule(g, node, view, config) -> Fusion | Rejection | None`` anchored at the
first layer of its pattern. ``Fusion`` replaces the matched layers by one new layer (or by nothing,
``erase``); ``Rejection`` says why a candidate that looked like the pattern was not fused, so the
build log can answer "why didn't this fuse?"; ``None`` means the pattern is not there.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

from ..graph import Graph, Node


@dataclass
class Fusion:
    matched: list
    node: Node | None             # None: the matched layers are erased
    erase: dict = field(default_factory=dict)   # tensor -> tensor its readers use instead
    detail: str = ""


@dataclass
class Rejection:
    matched: list
    reason: str


@dataclass(frozen=True)
class Rule:
    name: str
    fn: Callable
    doc: str


class View:
    """Producers and consumers of every tensor in a graph (rebuilt after each fusion)."""

    def __init__(self, g: Graph):
        self.g = g
        self.producer = {t: n for n in g.nodes for t in n.outputs}
        self.consumers: dict = {}
        for n in g.nodes:
            for t in n.inputs:
                self.consumers.setdefault(t, [])
                if n not in self.consumers[t]:
                    self.consumers[t].append(n)
        self.outputs = set(g.outputs)

    def next(self, node: Node) -> tuple:
        """(the only layer reading ``node``'s single output, why not) — one of them is None."""
        if len(node.outputs) != 1:
            return None, "it has several outputs"
        t = node.outputs[0]
        readers = self.consumers.get(t, [])
        if t in self.outputs:
            return None, f"its output {t!r} is a network output"
        if len(readers) != 1:
            return None, f"its output is read by {len(readers)} layers" if readers else None
        return readers[0], None

    def follow(self, node: Node, first: str, second: str) -> Node | None:
        """The layer after ``node`` when ``node`` is a ``first`` whose only reader is a ``second``."""
        if node.type != first:
            return None
        nxt, _ = self.next(node)
        return nxt if nxt is not None and nxt.type == second else None

    def is_constant(self, t: str) -> bool:
        return t in self.g.constants


def fused(name_parts: list, type_: str, params: dict, weights: dict, inputs: list, outputs: list,
          nodes: list) -> Node:
    origin = [o for n in nodes for o in n.origin]
    return Node(" + ".join(name_parts), type_, params, weights, inputs, outputs, nodes[0].precision, origin)


def same_precision(nodes: list) -> str | None:
    precs = {n.precision for n in nodes}
    if len(precs) > 1:
        return f"the layers have different precision overrides ({', '.join(sorted(str(p) for p in precs))})"
    return None


def clone(node: Node) -> Node:
    return Node(node.name, node.type, copy.deepcopy(node.params), dict(node.weights), list(node.inputs),
                list(node.outputs), node.precision, list(node.origin))
