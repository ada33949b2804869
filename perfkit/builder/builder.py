"""The Builder: Network -> Engine (validation, graph clean-up, precision, memory plan, weights)."""
from __future__ import annotations

import math

import threading
import time
from typing import Any

import numpy as np

from .._version import __version__
from ..device import get_device
from ..device.memory import align
from ..errors import BuildError, BuilderBusyError
from ..ops import get_op
from ..ops.base import TensorSpec
from ..ops.cuda_gemm import BLAS_WORKSPACE_BYTES
from ..runtime.engine import Engine
from ..runtime.plan import EnginePlan, StepPlan, TensorPlan, WeightPlan
from .build_log import BuildLog
from .config import BuilderConfig
from .graph import Graph, eliminate_dead_nodes, fold_constants
from .layout import assign_layouts, choose_layouts, layout_summary
from .memory_check import check_memory
from .memory_plan import lifetimes_of, plan_arena
from .passes import run_fusions
from .precision import assign_precision
from .precision_choice import MAJORITY, NOISE, ROUNDS, choose_precisions
from .tactics import as_cache, choose_tactics

_GEMM_TYPES = {"convolution", "fully_connected", "matrix_multiply", "mlp", "plugin"}


class Builder:
    """Builds engines for one device. One builder serves one thread at a time (guide 2.3);
    create one builder per thread to build concurrently.

    ``allocator``: any object with ``allocate(size, alignment, flags)`` and ``free(buffer)``; the
    engines it builds take their weights from it and their contexts take activations, workspace
    and I/O buffers from it. ``None``: the device's shared TrackingAllocator, which records every
    event over the device's default allocator (``device.tracking_allocator.events``).
    """

    def __init__(self, device: Any = None, allocator: Any = None):
        self.device = get_device(device)
        if allocator is not None and not (callable(getattr(allocator, "allocate", None))
                                          and callable(getattr(allocator, "free", None))):
            raise BuildError(f"allocator must have allocate(size, alignment, flags) and free(buffer) methods, "
                             f"not {type(allocator).__name__}; pass None for the device's tracking allocator")
        self.allocator = allocator if allocator is not None else self.device.tracking_allocator
        self._lock = threading.Lock()
        self._building_thread: str | None = None     # name of the thread inside build(), for the busy error

    def build(self, network: Any, config: BuilderConfig | None = None) -> Engine:
        from ..network import Network
        if not isinstance(network, Network):
            raise BuildError(f"Builder.build needs a perfkit.Network, got {type(network).__name__}")
        if config is not None and not isinstance(config, BuilderConfig):
            raise BuildError(f"Builder.build needs a BuilderConfig (or None), not {type(config).__name__}")
        config = (config or BuilderConfig()).validate()
        if not self._lock.acquire(blocking=False):
            who = f"thread {self._building_thread!r}" if self._building_thread else "another thread"
            raise BuilderBusyError(f"this builder is already building on {who} (called from "
                                   f"{threading.current_thread().name!r}); a builder may be used by one thread at a "
                                   "time (guide 2.3): create one Builder per thread")
        self._building_thread = threading.current_thread().name
        try:
            with self.device.activate():       # a builder of cuda:1 times and allocates there, from any thread
                return self._build(network, config)
        finally:
            self._building_thread = None
            self._lock.release()

    # ---------------------------------------------------------------------------------------------
    def _build(self, network: Any, config: BuilderConfig) -> Engine:
        t_start = time.perf_counter()
        log = BuildLog()
        g: Graph
        with log.timed("validate", "network", lambda: len(network.layers)) as info:
            if not network.inputs:
                raise BuildError(f"network {network.name!r} has no inputs; add one with add_input()")
            if not network.outputs:
                raise BuildError(f"network {network.name!r} has no outputs; mark one with mark_output()")
            g = Graph.from_network(network, config.layer_precisions)
            info["detail"] = (f"{len(network.inputs)} input(s), {len(network.layers)} layers, "
                              f"{len(network.outputs)} output(s)")
        count = lambda: len(g.nodes)  # noqa: E731
        with log.timed("dead_layers", "unused layers removed", count) as info:
            dead = eliminate_dead_nodes(g)
            info["matched"] = ", ".join(dead)
            info["detail"] = f"{len(dead)} layer(s) do not reach an output" if dead else "every layer reaches an output"
        with log.timed("constant_folding", "layers of constants computed at build time", count) as info:
            folded = fold_constants(g)
            info["matched"] = ", ".join(folded)
            info["detail"] = f"{len(folded)} layer(s) folded" if folded else "nothing to fold"
        n_fusions = run_fusions(g, config.enabled_fusions, log, config)
        check_memory(g, self.device, config)     # refuse a plan the device cannot hold, before timing anything
        cache = as_cache(config.timing_cache)
        cached = len(cache) if cache is not None else 0
        # one "precision" row per layer (chosen by timing, forced, or kept in fp32, and why)
        timed, pstats = choose_precisions(g, self.device, self.allocator, config, log, cache)
        with log.timed("precision", config.precision, count) as info:
            reformats = assign_precision(g, config.precision)
            info["detail"] = _precision_summary(g, config, pstats, len(reformats))
        for rule, matched, produced, detail in reformats:
            log.add("reformat", rule, matched, produced, len(g.nodes), len(g.nodes), 0.0, detail)
        tstats = choose_tactics(g, self.device, self.allocator, config, log, cache, timed)
        if tstats["hits"] or tstats["misses"] or tstats["reused"]:
            reused = (f"; {tstats['reused']} chosen from the timings the precision choice made (their time is on "
                      "the precision rows)") if tstats["reused"] else ""
            log.add("tactic", "timing_cache" if config.timing_cache is not None else "timing", "", "", len(g.nodes),
                    len(g.nodes), tstats["timed_ms"],
                    f"{tstats['misses']} layer(s) timed in {tstats['timed_ms']:.1f} ms; {tstats['hits']} from the "
                    f"timing cache, saving {tstats['saved_ms']:.1f} ms" + reused)

        if config.tf32:
            log.add("precision", "tf32", "", "", len(g.nodes), len(g.nodes), 0.0, _tf32_summary(g, self.device))
        choose_layouts(g, self.device, config.max_batch_size, log, cache)
        if cache is not None and len(cache) != cached:
            cache.save()        # what the precision and layout choices timed (reformats) too, not only tactics
        layouts, lrows = assign_layouts(g)
        if layouts:
            log.add("layout", "channels-last", "", "", len(g.nodes), len(g.nodes), 0.0, layout_summary(layouts, lrows, g))
        for rule, matched, produced, detail in lrows:
            log.add("reformat", rule, matched, produced, len(g.nodes), len(g.nodes), 0.0, detail)

        batch = config.max_batch_size
        steps, workspace = [], 0
        with log.timed("memory_plan", "liveness reuse", count) as info:
            for n in g.nodes:
                op = get_op(n.type)
                ins = [g.tensors[t] for t in n.inputs]
                outs = [g.tensors[t] for t in n.outputs]
                cost = op.cost(n.params, ins, outs, n.weights)
                ws = int(op.workspace(n.params, ins, outs, batch, self.device.kind))
                if config.max_workspace_bytes is not None and ws > config.max_workspace_bytes:
                    raise BuildError(f"layer {n.name!r} needs {ws} bytes of workspace at batch {batch}, more than "
                                     f"max_workspace_bytes={config.max_workspace_bytes}; raise the limit or "
                                     "lower max_batch_size")
                workspace = max(workspace, ws)
                steps.append(StepPlan(n.name, n.type, n.params, list(n.inputs), list(n.outputs), {}, n.precision,
                                      list(n.origin), ws, float(cost.flops), float(cost.bytes)))
            used = {t for s in steps for t in s.inputs + s.outputs}
            bindings = set(g.inputs) | set(g.outputs)
            arena_tensors = {t for t in used if t not in bindings and t not in g.constants}
            sizes = {t: batch * _nbytes(g.tensors[t]) for t in arena_tensors}
            offsets, arena = plan_arena(lifetimes_of(steps, arena_tensors), sizes)
            naive = sum(align(s) for s in sizes.values())
            info["detail"] = (f"{len(arena_tensors)} activation tensors in {arena} bytes "
                              f"({naive} without reuse); workspace {workspace} bytes")
        tensors = {}
        for t in sorted(used | bindings):
            spec = g.tensors[t]
            kind = ("input" if t in g.inputs else "output" if t in g.outputs else
                    "constant" if t in g.constants else "activation")
            tensors[t] = TensorPlan(t, list(spec.shape), spec.dtype, kind, offsets.get(t, 0), layouts.get(t, ""))

        with log.timed("weights", "pack", count) as info:
            host_weights: dict = {}
            for s, n in zip(steps, g.nodes):
                for wname, w in n.weights.items():
                    key = f"{n.name}/{wname}"
                    host_weights[key] = np.ascontiguousarray(w)
                    s.weights[wname] = key
            for t in sorted(used & set(g.constants)):
                host_weights[f"constant/{t}"] = np.ascontiguousarray(g.constants[t])
            weights, offset = {}, 0
            for key, w in host_weights.items():
                weights[key] = WeightPlan(key, list(w.shape), str(w.dtype), offset)
                offset += align(w.nbytes)
            info["detail"] = f"{len(weights)} weight tensors, {offset} bytes"
        io_bytes = sum(align(batch * _nbytes(g.tensors[t])) for t in list(g.inputs) + list(g.outputs))
        # on CUDA each context also gives its cuBLAS handle a workspace of its own (ops/cuda_gemm.py)
        blas_ws = BLAS_WORKSPACE_BYTES if self.device.kind == "cuda" and any(
            s.type in _GEMM_TYPES for s in steps) else 0
        memory = {"weights_bytes": int(offset), "activation_bytes": int(arena),
                  "workspace_bytes": int(align(workspace)) + blas_ws, "io_bytes": int(io_bytes)}
        plan = EnginePlan(
            name=network.name, device_kind=self.device.kind, device_name=self.device.name,
            precision=config.precision, max_batch_size=batch, inputs=list(g.inputs), outputs=list(g.outputs),
            tensors=tensors, steps=steps, weights=weights, memory=memory, build_config=config.to_dict(),
            build_log=log.rows, build_time_ms=(time.perf_counter() - t_start) * 1e3, perfkit_version=__version__,
            extra={"fusions": n_fusions, "tactic_timing_ms": tstats["timed_ms"],
                   "timing_cache_saved_ms": tstats["saved_ms"], "timing_cache_hits": tstats["hits"],
                   "blas_workspace_bytes": blas_ws,
                   "source_ops": {lay.name: str(lay.source_op) for lay in network.layers if lay.source_op}})
        return Engine(plan, host_weights, self.device, self.allocator)


def _precision_summary(g: Graph, config: BuilderConfig, pstats: dict, n_reformats: int) -> str:
    layers = [n for n in g.nodes if n.origin]            # reformat layers have no origin
    counts = {p: sum(n.precision == p for n in layers) for p in ("fp32", "fp16", "bf16")}
    share = ", ".join(f"{k} in {p}" for p, k in counts.items() if k)
    if config.precision == "fp32" or config.strict_types:
        how = f"{config.precision} {'strict' if config.strict_types else 'requested'}"
    else:
        how = (f"{config.precision} allowed: {pstats['timed_layers']} layer(s) timed in both precisions "
               f"({pstats['timed_ms']:.1f} ms, {ROUNDS} alternating rounds), {config.precision} taken where it was "
               f"more than {NOISE:.0%} faster in at least {math.ceil(MAJORITY * ROUNDS - 1e-9)} of them")
    return f"{how}; {len(layers)} layer(s): {share}; float32 accumulation; {n_reformats} reformat layer(s)"


#: the tactics whose products go to perfkit's cuBLAS and cuBLASLt calls (``Env.matmul``, ``Env.lt``), which
#: honour TF32; the convolution's CPU-shaped forms multiply with CuPy's matmul, which stays strict float32
_TF32_TYPES = {"fully_connected", "matrix_multiply", "mlp"}
_TF32_CONV_TACTICS = ("im2col", "taps")


def _tf32_reaches(n: Any) -> bool:
    return n.type in _TF32_TYPES or (n.type == "convolution" and n.params.get("tactic") in _TF32_CONV_TACTICS)


def _tf32_summary(g: Graph, device: Any) -> str:
    """The build-log detail of ``BuilderConfig(tf32=True)``: which layers' products it reaches, or why none."""
    if device.kind != "cuda":
        return (f"tf32 requested, no effect on {device.kind}: NumPy's BLAS has no TF32, so fp32 layers compute "
                "in float32")
    hit = [n.name for n in g.nodes if n.precision == "fp32" and _tf32_reaches(n)]
    if not hit:
        return "tf32 allowed; no fp32 layer has a matrix product on cuBLAS or cuBLASLt, so none uses it"
    shown = ", ".join(hit[:6]) + (f" and {len(hit) - 6} more" if len(hit) > 6 else "")
    return (f"tf32 allowed: the float32 products of {len(hit)} fp32 layer(s) run on TF32 Tensor Cores (inputs rounded "
            f"to 10-bit mantissas, float32 accumulation): {shown}")


def _nbytes(spec: TensorSpec) -> int:
    return int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
