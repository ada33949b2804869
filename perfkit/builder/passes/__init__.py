"""Fusion rules, one function each, applied in this order until none applies (guide 2.5).

Each rule is anchored at the first layer of its pattern and returns a Fusion, a Rejection (a
candidate that was not fused, with the reason) or None. ``run_fusions`` applies them to the
builder's graph and writes one build-log row per fusion and per rejected candidate.
"""
from __future__ import annotations

import time

from ...errors import BuildError
from .base import Fusion, Rejection, Rule, View
from .conv_fc import conv_relu, conv_scale, conv_sum, fc_relu
from .gelu import gelu_erf
from .mlp import mlp_absorb, mlp_create
from .reduce import l1_norm, l2_norm, log_sum, log_sum_exp, reduce_to_pooling, sum_squares
from .scale_shuffle import erase_identity_scale, scale_activation, shuffle_reduce, shuffle_shuffle

RULES = [
    Rule("erase_identity_scale", erase_identity_scale, "Scale adding 0, multiplying by 1, power 1 -> erased"),
    Rule("gelu_erf", gelu_erf, "x/sqrt2 -> erf -> +1 -> *x -> *0.5 written out -> one GELU activation"),
    Rule("shuffle_shuffle", shuffle_shuffle, "Shuffle + Shuffle -> one Shuffle or nothing"),
    Rule("shuffle_reduce", shuffle_reduce, "Shuffle without reshape + Reduce with keep-dims -> Reduce"),
    Rule("reduce_to_pooling", reduce_to_pooling, "Reduce avg over H, W with keep-dims on CHW -> average Pooling"),
    Rule("conv_scale", conv_scale, "Convolution + uniform/per-channel Scale -> folded weights"),
    Rule("conv_sum", conv_sum, "Convolution + ElementWise sum -> Convolution adding the sum"),
    Rule("conv_relu", conv_relu, "Convolution + ReLU -> Convolution with ReLU"),
    Rule("fc_relu", fc_relu, "FullyConnected + ReLU -> FullyConnected with ReLU"),
    Rule("scale_activation", scale_activation, "Scale + Activation -> Activation"),
    Rule("l1_norm", l1_norm, "abs + sum -> L1 norm"),
    Rule("sum_squares", sum_squares, "x*x + sum -> sum of squares"),
    Rule("l2_norm", l2_norm, "sum of squares + sqrt -> L2 norm"),
    Rule("log_sum", log_sum, "sum + log -> LogSum"),
    Rule("log_sum_exp", log_sum_exp, "exp + LogSum -> LogSumExp"),
    Rule("mlp_create", mlp_create, "GEMM + activation / bias / GEMM -> 1- or 2-layer MLP"),
    Rule("mlp_absorb", mlp_absorb, "MLP + GEMM / activation / bias / MLP -> deeper MLP"),
]
RULE_NAMES = [r.name for r in RULES]


def resolve_fusions(spec) -> set:
    """``"all"``, ``"none"`` or an iterable of rule names -> the set of enabled rule names."""
    if spec in (None, "all"):
        return set(RULE_NAMES)
    if spec == "none":
        return set()
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, (list, tuple, set, frozenset)) or not all(isinstance(n, str) for n in spec):
        raise BuildError(f"fusions must be 'all', 'none' or a set of rule names, not {spec!r}; "
                         f"rules: {', '.join(RULE_NAMES)}")
    names = set(spec)
    unknown = sorted(names - set(RULE_NAMES))
    if unknown:
        raise BuildError(f"unknown fusion rule(s) {unknown}: fusions takes 'all', 'none' or a set of rule names "
                         f"({', '.join(RULE_NAMES)})")
    return names


def run_fusions(g, enabled: set, log, cfg) -> int:
    """Applies enabled rules until none applies; returns the number of fusions."""
    rejected: set = set()
    applied = 0
    while True:
        view = View(g)
        done = False
        for rule in RULES:
            if rule.name not in enabled:
                continue
            for node in list(g.nodes):
                t0 = time.perf_counter()
                res = rule.fn(g, node, view, cfg)
                if isinstance(res, Fusion):
                    before = len(g.nodes)
                    _apply(g, res)
                    produced = res.node.name if res.node is not None else "(nothing)"
                    log.add("fusion", rule.name, ", ".join(n.name for n in res.matched), produced, before,
                            len(g.nodes), (time.perf_counter() - t0) * 1e3, res.detail or rule.doc, "fused")
                    applied += 1
                    done = True
                    break
                if isinstance(res, Rejection):
                    key = (rule.name, tuple(res.matched))
                    if key not in rejected:
                        rejected.add(key)
                        log.add("fusion", rule.name, ", ".join(res.matched), "", len(g.nodes), len(g.nodes),
                                (time.perf_counter() - t0) * 1e3, res.reason, "not fused")
            if done:
                break
        if not done:
            return applied


def _apply(g, f: Fusion) -> None:
    idx = max(g.nodes.index(n) for n in f.matched)
    keep = [n for n in g.nodes if n not in f.matched]
    if f.node is not None:
        keep.insert(idx - (len(f.matched) - 1), f.node)
    for old, new in f.erase.items():
        for n in keep:
            n.inputs = [new if t == old else t for t in n.inputs]
    g.nodes = keep


__all__ = ["RULES", "RULE_NAMES", "Rule", "Fusion", "Rejection", "run_fusions", "resolve_fusions"]
