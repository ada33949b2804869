"""KernelTracer: CUPTI activity tracing of GPU kernels, mapped back to perfkit layers (guide 1.5).

Decoding kernel names back to layers is what the guide calls complicated; perfkit does not decode
names. Eager launches: while a layer launches its kernels, an external correlation id naming
(inference, layer) is pushed, and CUPTI ties every kernel launched under it to that id. CUDA-graph
replays: the id pushed around the graph launch names the inference, and each kernel record carries
the graph node that ran it, which the context recorded per layer while capturing (when a node id is
not known, the kernels of a replay are assigned in launch order using the per-layer kernel counts
of the captured graph). Needs ``cupti-python``.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd

from ..frames.schemas import KERNELS

_LAYER_BITS = 4096          # external id = iteration * 4096 + layer index + 1
_GRAPH = _LAYER_BITS - 1    # "layer index" of a whole-graph replay
_state: dict = {"registered": False, "active": None, "lock": threading.Lock()}


def _completed(activities: list) -> None:
    tracer = _state["active"]
    if tracer is not None:
        tracer._records.extend(activities)


def _requested():
    return 8 * 1024 * 1024, 0


class KernelTracer:
    def __init__(self) -> None:
        from cupti import cupti  # ImportError when cupti-python is missing
        self._c = cupti
        self._records: list = []
        self._names: dict = {}
        self._iteration = -1
        self._node_layer: dict = {}             # CUPTI graph node id -> layer index
        self._replays: dict = {}                # iteration -> kernels per layer of the replayed graph

    def start(self) -> "KernelTracer":
        c = self._c
        with _state["lock"]:
            if _state["active"] is not None:
                raise RuntimeError("another kernel trace is running")
            _state["active"] = self
            if not _state["registered"]:
                c.activity_register_callbacks(_requested, _completed)
                _state["registered"] = True
        for kind in self._kinds():
            c.activity_enable(kind)
        t0 = time.perf_counter_ns()
        g = c.get_timestamp()
        t1 = time.perf_counter_ns()
        self._offset = (t0 + t1) // 2 - g          # perf_counter_ns = cupti timestamp + offset
        return self

    def stop(self) -> None:
        c = self._c
        c.activity_flush_all(1)
        for kind in self._kinds():
            c.activity_disable(kind)
        with _state["lock"]:
            _state["active"] = None

    def _kinds(self) -> list:
        # external correlation records are emitted for API calls, so the driver/runtime API kinds are on too
        k = self._c.ActivityKind
        return [k.CONCURRENT_KERNEL, k.MEMSET, k.MEMCPY, k.EXTERNAL_CORRELATION, k.DRIVER, k.RUNTIME]

    def hook(self) -> "_CorrelationHook":
        return _CorrelationHook(self)

    def frame(self, layer_times: pd.DataFrame | None = None) -> pd.DataFrame:
        c = self._c
        ext = {}
        kernels, work = [], []
        for r in self._records:
            if r.kind == c.ActivityKind.EXTERNAL_CORRELATION:
                ext[int(r.correlation_id)] = int(r.external_id)
            elif r.kind in (c.ActivityKind.CONCURRENT_KERNEL, c.ActivityKind.KERNEL):
                kernels.append(r)
                work.append((r, "kernel", str(r.name)))
            elif r.kind == c.ActivityKind.MEMSET:
                work.append((r, "memset", f"[memset {int(r.bytes)} B]"))
            elif r.kind == c.ActivityKind.MEMCPY:
                kind = getattr(c.ActivityMemcpyKind(int(r.copy_kind)), "name", str(r.copy_kind))
                work.append((r, "memcpy", f"[memcpy {kind} {int(r.bytes)} B]"))
        order = self._replay_order(kernels, ext)
        rows = []
        for k, what, name in work:
            eid = ext.get(int(k.correlation_id), 0)
            it, idx = (eid - 1) // _LAYER_BITS, (eid - 1) % _LAYER_BITS
            if eid and idx == _GRAPH:
                idx = self._node_layer.get(int(getattr(k, "graph_node_id", 0) or 0), order.get(id(k), -1))
            layer = self._names.get(idx, "") if eid else ""
            rows.append({"name": name, "kind": what, "start_ns": int(k.start) + self._offset,
                         "end_ns": int(k.end) + self._offset,
                         "ms": (int(k.end) - int(k.start)) / 1e6, "stream": int(k.stream_id),
                         "correlation_id": int(k.correlation_id), "layer": layer, "iteration": int(it) if eid else -1})
        return KERNELS.frame(sorted(rows, key=lambda r: r["start_ns"]))

    def _replay_order(self, kernels: list, ext: dict) -> dict:
        """Layer of each replayed kernel by launch order, for kernels whose node id is not known."""
        groups: dict = {}
        for k in kernels:
            eid = ext.get(int(k.correlation_id), 0)
            if eid and (eid - 1) % _LAYER_BITS == _GRAPH and str(k.name) != "perfkit_stamp" and \
                    int(getattr(k, "graph_node_id", 0) or 0) not in self._node_layer:
                groups.setdefault(int(k.correlation_id), []).append(k)
        out = {}
        for corr, ks in groups.items():
            counts = self._replays.get((ext[corr] - 1) // _LAYER_BITS)
            if not counts or sum(counts) != len(ks):
                continue
            layers = [i for i, c in enumerate(counts) for _ in range(c)]
            for k, i in zip(sorted(ks, key=lambda r: int(r.start)), layers):
                out[id(k)] = i
        return out


class _CorrelationHook:
    """Step hook: pushes (iteration, layer) as the external correlation id around each layer, or
    (iteration, whole graph) around a CUDA-graph replay."""

    graph_aware = True

    def __init__(self, tracer: KernelTracer):
        self.t = tracer
        self._push = tracer._c.activity_push_external_correlation_id
        self._pop = tracer._c.activity_pop_external_correlation_id
        self._kind = tracer._c.ExternalCorrelationKind.CUSTOM0

    def enter(self, index: int, step: Any) -> None:
        if index == 0:
            self.t._iteration += 1
        self.t._names[index] = step.name
        self._push(self._kind, self.t._iteration * _LAYER_BITS + index + 1)

    def exit(self, index: int, step: Any) -> None:
        self._pop(self._kind)

    def graph_enter(self, ctx: Any, graph: Any) -> None:
        t = self.t
        t._iteration += 1
        for i, s in enumerate(ctx.engine.plan.steps):
            t._names[i] = s.name
        try:
            t._node_layer.update(graph.cupti_node_layers(t._c))
        except Exception:       # no node ids: launch order and kernel counts place the kernels
            pass
        t._replays[t._iteration] = graph.kernels_per_layer
        self._push(self._kind, t._iteration * _LAYER_BITS + _GRAPH + 1)

    def graph_exit(self, ctx: Any, graph: Any) -> None:
        self._pop(self._kind)
