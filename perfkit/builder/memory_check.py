"""The builder's memory check: what one engine and one context will take, against the device, before
anything is timed or allocated.

Right after the fusions, while every size is still a product of shapes and the maximum batch, the
builder adds up the engine's weights and one context's activation arena, workspace and I/O buffers
(:func:`estimate`) and compares the sum with the memory the device has free (:func:`device_memory`):
on the CPU the host's available memory (the tighter of ``MemAvailable`` and the cgroup's limit), on
CUDA the GPU's free memory plus what CuPy's pool holds unused. A plan that cannot fit is refused with
a :class:`~perfkit.errors.BuildError` naming the bytes, the device's memory and the largest
``max_batch_size`` that would fit, instead of a raw ``MemoryError`` half-way through tactic timing.

Precisions are not chosen yet at that point, so the estimate is a lower bound: each float tensor and
weight is counted in the smallest storage its layer may take, each layer's workspace with its
cheapest tactic, and reformat layers not at all. A refused plan can never fit.
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ..device.memory import align
from ..errors import BuildError
from ..ops import get_op
from ..ops.base import TensorSpec
from ..ops.cuda_gemm import BLAS_WORKSPACE_BYTES
from ..precision import STORAGE, is_float
from .memory_plan import lifetimes_of, plan_arena

_GEMM_TYPES = {"convolution", "fully_connected", "matrix_multiply", "mlp", "plugin"}


def _narrowest(node: Any, config: Any) -> str:
    """The smallest storage dtype ``node`` may end up in."""
    forced = node.precision or (config.precision if getattr(config, "strict_types", True) else None)
    if forced is not None:
        return STORAGE[forced]
    return min((STORAGE[p] for p in ("fp32", config.precision)), key=lambda d: np.dtype(d).itemsize)


def _nbytes(shape: Any, dtype: str, batch: int = 1) -> int:
    return batch * math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize


def estimate(g: Any, device_kind: str, config: Any, batch: int | None = None) -> dict:
    """Lower bounds of the bytes the engine built from graph ``g`` takes at ``batch`` (default
    ``config.max_batch_size``): ``weights``, ``activations``, ``workspace`` and ``io`` (as in
    ``Engine.memory``) and their ``total``."""
    batch = config.max_batch_size if batch is None else int(batch)
    dtype_of: dict = {}                      # tensor -> the narrowest dtype a writer or reader stores it in
    for n in g.nodes:
        storage = _narrowest(n, config)
        for t in n.inputs + n.outputs:
            spec = g.tensors[t]
            if is_float(spec.dtype) and np.dtype(storage).itemsize < np.dtype(dtype_of.get(t, spec.dtype)).itemsize:
                dtype_of[t] = storage
    bindings = set(g.inputs) | set(g.outputs)

    def spec(t: str) -> TensorSpec:
        s = g.tensors[t]
        return s if t in bindings else TensorSpec(s.shape, dtype_of.get(t, s.dtype), s.constant)

    weights = 0
    for n in g.nodes:
        storage = _narrowest(n, config)
        for w in n.weights.values():
            w = np.asarray(w)
            weights += align(_nbytes(w.shape, storage if is_float(w.dtype) else w.dtype.name))
    used = {t for n in g.nodes for t in n.inputs + n.outputs}
    weights += sum(align(_nbytes(g.constants[t].shape, spec(t).dtype)) for t in used & set(g.constants))

    arena_tensors = {t for t in used if t not in bindings and t not in g.constants}
    sizes = {t: _nbytes(g.tensors[t].shape, spec(t).dtype, batch) for t in arena_tensors}
    _, activations = plan_arena(lifetimes_of(g.nodes, arena_tensors), sizes)

    workspace = 0
    for n in g.nodes:
        op = get_op(n.type)
        ins, outs = [spec(t) for t in n.inputs], [spec(t) for t in n.outputs]
        tactics = tuple(t for t in op.applicable_tactics(n.params, ins)          # those that can run here
                        if not op.tactic_unavailable(t, device_kind)) if op.tactic_names else ()
        needs = []
        for tactic in tactics or (None,):
            params = n.params if tactic is None else {**n.params, "tactic": tactic}
            try:
                needs.append(int(op.workspace(params, ins, outs, batch, device_kind)))
            except (KeyError, TypeError, ValueError, IndexError):   # an op that cannot say: count nothing
                needs.append(0)
        workspace = max(workspace, min(needs))
    workspace = align(workspace)
    if device_kind == "cuda" and any(n.type in _GEMM_TYPES for n in g.nodes):
        workspace += BLAS_WORKSPACE_BYTES
    io = sum(align(_nbytes(g.tensors[t].shape, g.tensors[t].dtype, batch)) for t in list(g.inputs) + list(g.outputs))
    out = {"weights": int(weights), "activations": int(activations), "workspace": int(workspace), "io": int(io)}
    out["total"] = sum(out.values())
    return out


def device_memory(device: Any) -> tuple[int | None, int | None]:
    """(available, total) bytes of ``device``; None where the platform does not say."""
    if device.kind == "cuda":
        import cupy
        with cupy.cuda.Device(device.index):
            free, total = cupy.cuda.runtime.memGetInfo()
            free += cupy.get_default_memory_pool().free_bytes()     # cached by CuPy, reusable
        return int(free), int(total)
    return _host_memory()


def _host_memory() -> tuple[int | None, int | None]:
    total = available = None
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        total = page * os.sysconf("SC_PHYS_PAGES")
        available = page * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:                                    # a container's limit (cgroup v2)
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                current = int(f.read().strip())
            limit = int(limit)
            total = limit if total is None else min(total, limit)
            left = max(limit - current, 0)
            available = left if available is None else min(available, left)
    except (OSError, ValueError):
        pass
    return available, total


def _fmt(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} PiB"


def check_memory(g: Any, device: Any, config: Any) -> dict:
    """Refuses (BuildError) a plan whose engine and one context cannot fit in the device's available
    memory; returns the estimate (with ``available`` and ``device_total``) otherwise."""
    need = estimate(g, device.kind, config)
    available, total = device_memory(device)
    need["available"], need["device_total"] = available, total
    if available is None or need["total"] <= available:
        return need
    batch = config.max_batch_size
    fits = _largest_batch(g, device.kind, config, available)
    parts = ", ".join(f"{k} {_fmt(need[k])}" for k in ("weights", "activations", "workspace", "io"))
    advice = (f"build with max_batch_size={fits} or less" if fits else
              "the weights alone do not fit: use a smaller network or a device with more memory")
    raise BuildError(
        f"an engine of {g.name!r} at max_batch_size={batch} needs at least {_fmt(need['total'])} "
        f"({need['total']} bytes: {parts}) for itself and one execution context, but the {device.kind} device "
        f"has {_fmt(available)} available ({_fmt(total) if total else 'unknown'} in all); {advice}, "
        "or free memory held by other engines and contexts")


def _largest_batch(g: Any, device_kind: str, config: Any, available: int) -> int:
    """The largest max_batch_size whose estimate fits in ``available`` bytes (0: none does)."""
    def fits(b: int) -> bool:
        return estimate(g, device_kind, config, b)["total"] <= available
    if not fits(1):
        return 0
    lo, hi = 1, config.max_batch_size          # fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo
