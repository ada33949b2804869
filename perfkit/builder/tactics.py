"""Tactic selection (guide 2.4): time each candidate implementation of a layer on the target device.

A layer type lists its implementations (``Op.tactic_names``). For every layer with more than one
applicable candidate the builder runs each at the engine's maximum batch size on random inputs of
the right shapes — a warm-up, then ``tactic_iterations`` timed runs, median — and keeps the fastest.
A :class:`TimingCache` remembers the choice per (device, precision, layer signature), so a rebuild
skips the timing entirely.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from typing import Any

import numpy as np

from ..device.memory import allocate
from ..errors import PerfkitError
from ..ops import Env, get_op
from ..ops.cuda_gemm import BLAS_WORKSPACE_BYTES

CACHE_VERSION = 1


class TimingCacheError(PerfkitError, ValueError):
    """A timing cache file exists but cannot be used."""


class TimingCache:
    """Tactic choices and their measured times, keyed by device, precision and layer signature.

    ``TimingCache(path)`` loads ``path`` if it exists and :meth:`save` writes it back (JSON; the
    builder saves after each build that added entries). ``TimingCache()`` lives in memory only.
    """

    def __init__(self, path: Any = None):
        self.path = None if path is None else os.fspath(path)
        self.entries: dict = {}
        self._lock = threading.Lock()
        if self.path and os.path.exists(self.path):
            try:
                with open(self.path) as f:
                    data = json.load(f)
                if data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
                    raise ValueError(f"version {data.get('version')!r}")
                self.entries = data["entries"]
            except (OSError, ValueError, AttributeError) as exc:
                raise TimingCacheError(f"timing cache {self.path!r} cannot be used ({exc}); delete it and rebuild") from None

    def get(self, key: str) -> dict | None:
        with self._lock:
            return self.entries.get(key)

    def put(self, key: str, entry: dict) -> None:
        with self._lock:
            self.entries[key] = entry

    def save(self) -> None:
        if not self.path:
            return
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"version": CACHE_VERSION, "entries": self.entries}, f, indent=0, sort_keys=True)
        os.replace(tmp, self.path)

    def __len__(self) -> int:
        return len(self.entries)


def as_cache(obj: Any) -> TimingCache | None:
    if obj is None or isinstance(obj, TimingCache):
        return obj
    return TimingCache(obj)


def signature(device: Any, precision: str, node: Any, g: Any, batch: int) -> str:
    params = {k: v for k, v in node.params.items() if k != "tactic"}
    sig = {"device": device.name, "kind": device.kind, "precision": precision, "type": node.type, "params": params,
           "inputs": [[list(g.tensors[t].shape), g.tensors[t].dtype, t in g.constants] for t in node.inputs],
           "weights": {k: [list(w.shape), str(w.dtype)] for k, w in sorted(node.weights.items())}, "batch": batch}
    return hashlib.sha256(json.dumps(sig, sort_keys=True, default=str).encode()).hexdigest()[:32]


def choose_tactics(g: Any, device: Any, allocator: Any, config: Any, log: Any) -> dict:
    """Sets ``params['tactic']`` on every node with candidates; returns timing totals for the log."""
    cache = as_cache(config.timing_cache)
    batch = config.max_batch_size
    stats = {"timed_ms": 0.0, "saved_ms": 0.0, "hits": 0, "misses": 0}
    for node in g.nodes:
        op = get_op(node.type)
        specs = [g.tensors[t] for t in node.inputs]
        names = tuple(op.applicable_tactics(node.params, specs)) if op.tactic_names else ()
        if not names:
            continue
        if len(names) == 1 or config.tactics == "default":
            node.params, node.weights = op.prepare_tactic(names[0], node.params, node.weights)
            continue
        key = signature(device, node.precision, node, g, batch)
        entry = cache.get(key) if cache is not None else None
        if entry is not None and entry.get("tactic") in names:
            stats["hits"] += 1
            stats["saved_ms"] += float(entry.get("timing_ms", 0.0))
            node.params, node.weights = op.prepare_tactic(entry["tactic"], node.params, node.weights)
            log.add("tactic", entry["tactic"], node.name, node.name, len(g.nodes), len(g.nodes), 0.0,
                    "from the timing cache: " + ", ".join(f"{k} {v:.3f} ms" for k, v in entry["times_ms"].items()),
                    "cached")
            continue
        t0 = time.perf_counter()
        times = _time_candidates(g, node, op, names, device, allocator, batch, config.tactic_iterations)
        spent = (time.perf_counter() - t0) * 1e3
        stats["timed_ms"] += spent
        stats["misses"] += 1
        best = min(times, key=times.get)
        for name, ms in times.items():
            log.add("tactic", name, node.name, node.name if name == best else "", len(g.nodes), len(g.nodes), ms,
                    f"median of {config.tactic_iterations} runs at batch {batch}" +
                    ("" if name == best else f"; {ms / times[best]:.2f}x the time of {best}"),
                    "chosen" if name == best else "rejected")
        node.params, node.weights = op.prepare_tactic(best, node.params, node.weights)
        if cache is not None:
            cache.put(key, {"tactic": best, "times_ms": times, "timing_ms": spent, "layer": node.name})
    if cache is not None and stats["misses"]:
        cache.save()
    return stats


def _time_candidates(g, node, op, names, device, allocator, batch, iterations) -> dict:
    xp = device.xp
    rng = np.random.default_rng(0)
    ins = []
    for t in node.inputs:
        spec = g.tensors[t]
        if t in g.constants:
            host = g.constants[t]
        elif spec.dtype == "int32":
            host = np.zeros((batch,) + tuple(spec.shape), np.int32)
        else:
            host = rng.standard_normal((batch,) + tuple(spec.shape)).astype(spec.dtype)
        ins.append(xp.asarray(host))
    outs = [xp.empty((batch,) + tuple(g.tensors[t].shape), g.tensors[t].dtype) for t in node.outputs]
    times = {}
    for name in names:
        params, weights = op.prepare_tactic(name, node.params, node.weights)
        dev_w = {k: xp.asarray(v) for k, v in weights.items()}
        ws_bytes = int(op.workspace(params, [g.tensors[t] for t in node.inputs], [g.tensors[t] for t in node.outputs],
                                    batch))
        ws = allocate(allocator, ws_bytes, "workspace", "builder", device.kind) if ws_bytes else None
        blas_ws = allocate(allocator, BLAS_WORKSPACE_BYTES, "workspace", "builder", device.kind) \
            if device.kind == "cuda" else None
        env = Env(xp, device.kind, None if ws is None else ws.array, None if blas_ws is None else blas_ws.array)
        samples = []
        try:
            for i in range(iterations + 1):
                env.reset_scratch()
                device.synchronize()
                t0 = time.perf_counter_ns()
                op.compute(env, ins, outs, params, dev_w)
                device.synchronize()
                if i:
                    samples.append((time.perf_counter_ns() - t0) / 1e6)
        finally:
            env.close()
            for buf in (ws, blas_ws):
                if buf is not None:
                    allocator.free(buf)
        times[name] = float(np.median(samples))
    return times
