"""Tactic selection (guide 2.4): time each candidate implementation of a layer on the target device.

A layer type lists its implementations (``Op.tactic_names``). For every layer with more than one
applicable candidate the builder runs each at the engine's maximum batch size on random inputs of
the right shapes and of the engine's own storage dtypes, as a race: every candidate runs once (after
a warm-up); those more than :data:`PRUNE` times slower than the fastest first run stop there (noise
on a loaded host makes a run slower, not faster, so a candidate that far behind does not win); the
others, still set up and warm, run again in turns, up to ``tactic_iterations`` runs each, and stop
early once the fastest one's best run leads every other's best run by more than the noise
(:data:`NOISE`, or twice the leader's own spread, after three runs each). Each keeps its best run;
the fastest is kept. An op may name the tactics that cannot win on the CPU for a layer (its
``cpu_losers(params, inputs)``, a cost model); those are not timed there. The same timing serves the choice between precisions
(``precision_choice.py``). A :class:`TimingCache` remembers the choice per (device, precision,
layer signature), so a rebuild skips the timing entirely; without one, the build keeps an in-memory
cache, so identical layers (the repeated blocks of a ResNet) are timed once.

Every measurement goes through :func:`measure`, one replaceable function: tests substitute it to
make a build's choices deterministic.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..device.gpu_timing import gpu_ms
from ..device.memory import allocate
from ..errors import BuildError, PerfkitError
from ..ops import Env, get_op
from ..ops.base import NHWC, nhwc_copy, nhwc_empty, TacticUnavailable
from ..ops.cuda_gemm import BLAS_WORKSPACE_BYTES
from .tactics_progress import progress_bar, progress_wanted

CACHE_VERSION = 1

#: candidates whose first run took more than this many times the fastest first run stop there
PRUNE = 1.25
#: the least lead over the others' best runs at which the race stops early
NOISE = 0.05
#: milliseconds below which two times are not told apart (CUDA events resolve about half a microsecond)
FLOOR_MS = 0.002


class TimingCacheError(PerfkitError, ValueError):
    """A timing cache file exists but cannot be used."""


class TimingCache:
    """Tactic choices and their measured times, keyed by device, precision and layer signature.

    ``TimingCache(path)`` loads ``path`` if it exists and :meth:`save` writes it back (JSON; the
    builder saves after each build that added entries). ``TimingCache()`` lives in memory only.

    Several processes may share one file (the workers of a distributed sweep): :meth:`save` merges
    under a lock. A layer this cache timed anew (its entry no longer covered the tactics) replaces the
    file's entry unless another process changed that entry since this cache read it; where two
    processes timed the same layer, the entry already in the file wins and is taken into this cache
    too, so every build after the first sees one choice per layer.
    """

    def __init__(self, path: Any = None):
        if path is not None:
            from ..arguments import path as as_path
            path = as_path(path, "TimingCache: path")
        self.path = path
        self.entries: dict = {}
        self._seen: dict = {}        # what each key held in the file when this cache last read or wrote it
        self._lock = threading.Lock()
        if self.path and os.path.exists(self.path):
            self.entries = self._read()
            self._seen = dict(self.entries)

    def _read(self) -> dict:
        try:
            with open(self.path) as f:
                data = json.load(f)
            if data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
                raise ValueError(f"version {data.get('version')!r}")
            return data["entries"]
        except (OSError, ValueError, AttributeError) as exc:
            raise TimingCacheError(f"timing cache {self.path!r} cannot be used ({exc}); delete it and rebuild") from None

    def get(self, key: str) -> dict | None:
        _check_key(key)
        with self._lock:
            return self.entries.get(key)

    def put(self, key: str, entry: dict) -> None:
        _check_key(key)
        if not isinstance(entry, dict):
            raise TimingCacheError(f"a timing-cache entry is a dict, not {type(entry).__name__}")
        with self._lock:
            self.entries[key] = entry

    def save(self) -> None:
        """Writes the entries to the file, merged with what other processes wrote there since it was read."""
        if not self.path:
            return
        try:
            with _file_lock(f"{self.path}.lock"), self._lock:
                if os.path.exists(self.path):
                    self._merge(self._read())
                tmp = f"{self.path}.tmp-{os.getpid()}"
                with open(tmp, "w") as f:
                    json.dump({"version": CACHE_VERSION, "entries": self.entries}, f, indent=0, sort_keys=True)
                os.replace(tmp, self.path)
                self._seen = dict(self.entries)
        except OSError as exc:
            raise TimingCacheError(f"timing cache {self.path!r} cannot be written ({exc}); give a path in a folder "
                                   "you can write to") from None

    def _merge(self, disk: dict) -> None:
        """Takes the file's entries into this cache: each key this cache did not change since it read the
        file, and each key both changed (the first written stands); keeps the keys only this cache changed."""
        for key, theirs in disk.items():
            mine = self.entries.get(key)
            if mine is None or mine == theirs:
                self.entries[key] = theirs
                continue
            seen = self._seen.get(key)
            if not (mine != seen and theirs == seen):       # not "changed here only"
                self.entries[key] = theirs

    def __len__(self) -> int:
        return len(self.entries)


@contextlib.contextmanager
def _file_lock(path: str):
    """An exclusive lock between processes: ``flock`` on POSIX. Without ``fcntl`` (Windows), or on a file
    system that refuses locks, there is none: a concurrent save may then drop the other's new entries."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:             # ENOLCK / EOPNOTSUPP (some network file systems): save without the lock
            from ..log import get_logger
            get_logger("builder").warning("timing cache: %s cannot be locked; saving without the lock", path)
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        raise TimingCacheError(f"timing-cache keys are strings (signature_of makes them), not {key!r}")


def as_cache(obj: Any) -> TimingCache | None:
    if obj is None or isinstance(obj, TimingCache):
        return obj
    return TimingCache(obj)


def signature_of(device: Any, precision: str, op_type: str, params: dict, in_specs: list, constant: list,
                 weights: dict, batch: int, tf32: bool = False) -> str:
    """The timing-cache key of one layer in one precision: device, op, parameters, input shapes and
    dtypes, weight shapes and dtypes, batch, and whether float32 products may use TF32 (only when they may:
    the keys of strict builds stay as they were)."""
    params = {k: v for k, v in params.items() if k != "tactic"}
    sig = {"device": device.name, "kind": device.kind, "precision": precision, "type": op_type, "params": params,
           "inputs": [[list(s.shape), s.dtype, bool(c)] for s, c in zip(in_specs, constant)],
           "weights": {k: [list(w.shape), str(w.dtype)] for k, w in sorted(weights.items())}, "batch": batch}
    if tf32:
        sig["tf32"] = True
    if gpu_clock(device):
        sig["clock"] = "gpu"        # entries timed from the host (launch time included) do not mix with these
    return hashlib.sha256(json.dumps(sig, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cached_reformat_ms(cache: Any, sig: str) -> float | None:
    """The reformat time (ms) ``cache`` keeps under ``sig`` (a layout or dtype reformat, keyed by
    :func:`signature_of`), or None: no cache, no entry, or an entry that is not a reformat's."""
    entry = cache.get(sig) if cache is not None else None
    if isinstance(entry, dict) and isinstance(entry.get("reformat_ms"), (int, float)):
        return float(entry["reformat_ms"])
    return None


def keep_reformat_ms(cache: Any, sig: str, ms: float) -> None:
    """Keeps a reformat's time in ``cache`` (if any) under ``sig``, for :func:`cached_reformat_ms`."""
    if cache is not None:
        cache.put(sig, {"reformat_ms": ms})


def signature(device: Any, precision: str, node: Any, g: Any, batch: int, tf32: bool = False) -> str:
    return signature_of(device, precision, node.type, node.params, [g.tensors[t] for t in node.inputs],
                        [t in g.constants for t in node.inputs], node.weights, batch, tf32)


@dataclass
class Target:
    """What one measurement times: a layer (or a reformat) in one precision with one tactic
    (``""`` for a layer type without tactics), reading ``inputs`` and writing ``outputs``, which are
    device arrays of the engine's storage dtypes at its maximum batch size."""
    layer: str
    type: str
    precision: str
    tactic: str
    inputs: list
    outputs: list


def gpu_clock(device: Any) -> bool:
    """Whether tactics are timed by GPU time on ``device``: a CUDA device where engines replay CUDA graphs.
    Without graphs (no nvmath-python or cuda-bindings) an engine launches layer by layer from Python, and
    the launch time it pays is part of what a choice should weigh: timed from the host then."""
    if device.kind != "cuda":
        return False
    if "graphs" not in _CLOCK:
        from ..runtime.cuda_graph import graph_support
        _CLOCK["graphs"] = not graph_support()
    return _CLOCK["graphs"]


_CLOCK: dict = {}


def measure(target: Target, run: Callable[[], None], device: Any, iterations: int) -> float:
    """Milliseconds of ``run()`` on ``device``: one warm-up, then the median of ``iterations`` runs. On the
    CPU each run is timed between two synchronisations; on CUDA with graphs (:func:`gpu_clock`) each is the
    run's GPU time, the host's launch time hidden (``device/gpu_timing.py``): an engine replays its layers
    back to back in a CUDA graph, so Python and library launch times are not what a choice should weigh."""
    samples = []
    gpu = gpu_clock(device)
    for i in range(iterations + 1):
        device.synchronize()
        if i and gpu:
            samples.append(gpu_ms(run, device))
            continue
        t0 = time.perf_counter_ns()
        run()
        device.synchronize()
        if i:
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(samples))


RANDOM_CHUNK = 1 << 20      # elements drawn at a time: host memory is the array plus 4 MiB


def random_input(shape: tuple, dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """Standard-normal values straight into a host array of ``dtype`` (zeros for integers), drawn
    in float32 chunks, so that drawing takes the array's own size plus one chunk, never a float64
    copy of it."""
    out = np.zeros(shape, dtype)
    if np.dtype(dtype).kind in "iub":
        return out
    return _fill_standard_normal(out, rng, RANDOM_CHUNK)


def _fill_standard_normal(out: Any, gen: Any, chunk: int) -> Any:
    """``out`` (NumPy or CuPy) filled with ``gen``'s float32 standard normals, ``chunk`` at a time, each
    converted to ``out``'s dtype as it lands."""
    flat = out.reshape(-1)
    for start in range(0, flat.size, chunk):
        n = min(chunk, flat.size - start)
        flat[start:start + n] = gen.standard_normal(n, dtype=np.float32)
    return out


def draw_input(shape: tuple, dtype: Any, xp: Any, rng: np.random.Generator) -> Any:
    """A timing input where the layer runs: :func:`random_input` on the host; on a GPU drawn there by its
    own generator (seeded from ``rng``), since drawing an activation-sized array on the host and copying it
    over, for every layer and every precision timed, was a large share of a GPU build's time at large batches
    (benchmarks/RESULTS.md, 2026-11-30)."""
    if xp is np:
        return random_input(shape, dtype, rng)
    out = xp.zeros(shape, dtype)
    if np.dtype(dtype).kind in "iub":
        return out
    return _fill_standard_normal(out, xp.random.default_rng(int(rng.integers(1 << 31))), 16 * RANDOM_CHUNK)


def time_layer(layer: str, op: Any, params: dict, weights: dict, in_specs: list, out_specs: list,
               constants: list, names: tuple, precision: str, device: Any, allocator: Any, batch: int,
               iterations: int, race: bool = False, tf32: bool = False) -> dict:
    """Times ``op`` with each tactic in ``names`` (``("",)``: the op has none) at ``batch``.

    ``in_specs``/``out_specs`` carry the storage dtypes; ``constants[i]`` is the (converted) value
    of input ``i`` when it is a constant, else ``None``; ``weights`` are already in storage dtypes.
    Returns ``{tactic: milliseconds}``: the median of ``iterations`` runs each, or with ``race`` the
    race of the module's docstring (then :func:`last_race` tells how each candidate ended). ``tf32``: the
    candidates' float32 products may run on TF32 Tensor Cores, as the engine's will.
    """
    xp = device.xp
    rng = np.random.default_rng(0)
    ins = [xp.asarray(c) if c is not None else draw_input((batch,) + tuple(s.shape), s.dtype, xp, rng)
           for s, c in zip(in_specs, constants)]
    outs = [xp.empty((batch,) + tuple(s.shape), s.dtype) for s in out_specs]
    make = lambda name: _Candidate(op, name, params, weights, in_specs, out_specs, batch, device,  # noqa: E731
                                   allocator, ins, outs, tf32)
    target = lambda name: Target(layer, op.type, precision, name, ins, outs)  # noqa: E731
    _RACE.result = {}
    if not race or len(names) < 2 or iterations < 2:
        times = {}
        for name in names:
            cand = None
            try:
                cand = make(name)
                times[name] = measure(target(name), cand.run, device, iterations)
            except TacticUnavailable as exc:
                _unavailable(name, exc, names, times)
            finally:
                if cand is not None:
                    cand.close()
        return times
    cands: dict = {}
    try:
        runs = {}
        for name in names:
            try:
                cands[name] = make(name)
                runs[name] = [measure(target(name), cands[name].run, device, 1)]
            except TacticUnavailable as exc:
                if name in cands:
                    cands.pop(name).close()
                _unavailable(name, exc, names, runs)
                continue
            for other in list(cands):     # out of the race already: its workspace goes back at once
                if runs[other][0] > PRUNE * min(r[0] for r in runs.values()) + FLOOR_MS:
                    cands.pop(other).close()
        fastest = min(r[0] for r in runs.values())
        kept = [n for n in names if n in runs and runs[n][0] <= PRUNE * fastest + FLOOR_MS]
        for name in names:
            if name in runs and name not in kept:
                _RACE.result[name] = f"one run at batch {batch}, {runs[name][0] / fastest:.2f}x the fastest: " \
                                     "stopped there"
        for i in range(iterations - 1):
            if len(kept) < 2 or (i >= 2 and _clear([runs[n] for n in kept])):
                break
            for name in kept:           # warm already: measure's warm-up call is skipped
                runs[name].append(measure(target(name), _warm(cands[name].run), device, 1))
        for name in kept:
            _RACE.result[name] = f"best of {len(runs[name])} runs at batch {batch}"
        return {name: min(r) for name, r in runs.items()}
    finally:
        for cand in cands.values():
            cand.close()


def _unavailable(name: str, exc: Exception, names: tuple, timed: dict) -> None:
    """Drops a tactic that cannot run for this layer, saying why; the last one left cannot be dropped."""
    _RACE.result[name] = f"unavailable: {exc}"
    if name == names[-1] and not timed:
        raise exc


def _clear(runs: list) -> bool:
    """Whether the fastest candidate's best run leads every other's best run by more than the noise: 5%,
    or twice its own runs' spread (median over best), whichever is larger."""
    best = min(runs, key=min)
    lo = min(best)
    margin = max(NOISE, 2 * (float(np.median(best)) - lo) / lo)
    return all(min(r) > lo * (1 + margin) + FLOOR_MS for r in runs if r is not best)


def _warm(run: Callable[[], None]) -> Callable[[], None]:
    """``run``, except that its first call (the warm-up :func:`measure` makes) does nothing."""
    calls = [0]

    def once_warm() -> None:
        calls[0] += 1
        if calls[0] > 1:
            run()
    return once_warm


class _Candidate:
    """One tactic set up to run: its parameters and weights on the device, its workspace, its Env."""

    def __init__(self, op: Any, name: str, params: dict, weights: dict, in_specs: list, out_specs: list,
                 batch: int, device: Any, allocator: Any, ins: list, outs: list, tf32: bool = False) -> None:
        xp = device.xp
        params_t, weights_t = op.prepare_tactic(name, params, weights) if name else (params, weights)
        if op.tactic_layouts.get(name) == NHWC:     # the layout the builder's layout pass will give it
            ins = [a if s.constant else nhwc_copy(xp, a) for a, s in zip(ins, in_specs)]
            outs = [nhwc_empty(xp, a.shape, a.dtype) for a in outs]
        dev_w = {k: xp.asarray(v) for k, v in weights_t.items()}
        ws_bytes = int(op.workspace(params_t, in_specs, out_specs, batch, device.kind))
        self.allocator = allocator
        self.bufs = [allocate(allocator, ws_bytes, "workspace", "builder", device.kind) if ws_bytes else None,
                     allocate(allocator, BLAS_WORKSPACE_BYTES, "workspace", "builder", device.kind)
                     if device.kind == "cuda" else None]
        ws, blas_ws = self.bufs
        self.env = env = Env(xp, device.kind, None if ws is None else ws.array,
                             None if blas_ws is None else blas_ws.array, tf32)

        def run() -> None:
            env.reset_scratch()
            with np.errstate(all="ignore"):      # random inputs: sqrt/log of negatives are expected
                op.compute(env, ins, outs, params_t, dev_w)
        self.run = run

    def close(self) -> None:
        self.env.close()
        for buf in self.bufs:
            if buf is not None:
                self.allocator.free(buf)
        self.bufs = [None, None]


_RACE = threading.local()


def last_race() -> dict:
    """How each candidate of the last raced :func:`time_layer` of this thread was timed, in words."""
    return dict(getattr(_RACE, "result", {}))


def choose_tactics(g: Any, device: Any, allocator: Any, config: Any, log: Any, cache: Any = None,
                   timed: dict | None = None) -> dict:
    """Sets ``params['tactic']`` on every node with candidates; returns timing totals for the log.

    ``timed``: entries the precision choice already measured, by :func:`signature` key (the same
    layer, precision and dtypes are not timed twice).
    """
    cache = as_cache(config.timing_cache) if cache is None else cache
    if cache is None:
        cache = TimingCache()               # in memory: identical layers of this build are timed once
    timed = timed or {}
    batch = config.max_batch_size
    stats = {"timed_ms": 0.0, "saved_ms": 0.0, "hits": 0, "misses": 0, "reused": 0}
    # a bar only where someone watches, and only once timing has taken a second: quick builds print nothing
    with progress_bar(len(g.nodes), "timing tactics", progress_wanted(None, "tactics"), delay=1.0) as bar:
        for node in g.nodes:
            _choose(node, g, device, allocator, config, log, cache, timed, batch, stats)
            bar.update(1)
    if cache is not None and (stats["misses"] or stats["reused"]):   # reused: the precision choice put them
        cache.save()
    return stats


def candidate_tactics(op: Any, params: dict, specs: list, device: Any, config: Any, batch: int,
                      out_specs: list | None = None) -> tuple:
    """The tactics worth timing for a layer: those the op offers for these inputs, less those its cost model
    says cannot win on the CPU (``cpu_losers``), and one of each pair it declares the same at batch 1. Used by
    the tactic choice and by the precision choice alike."""
    names = tuple(op.applicable_tactics(params, specs)) if op.tactic_names else ()
    names = tuple(n for n in names if op.tactic_unavailable(n, device.kind) is None)
    cap = config.max_workspace_bytes
    if cap is not None and out_specs is not None:      # a tactic whose workspace breaks the cap would fail the build
        names = tuple(n for n in names
                      if op.workspace({**params, "tactic": n}, specs, out_specs, batch, device.kind) <= cap) or names
    if not names:
        return ()
    losers = getattr(op, "cpu_losers", None)
    if device.kind == "cpu" and losers is not None and config.tactics != "default":
        names = tuple(n for n in names if n not in losers(params, specs)) or names
    if batch == 1:
        same = getattr(op, "same_at_batch_one", {})
        names = tuple(n for n in names if same.get(n) not in names) or names
    return names


def covers(entry: dict | None, names: tuple) -> bool:
    """Whether a timing-cache entry chose among all of ``names`` (one saved before an op gained a tactic
    did not time it, and is timed again); a tactic that could not run for the layer counts as covered."""
    return entry is not None and entry.get("tactic") in names and \
        set(names) <= set(entry.get("times_ms", {})) | set(entry.get("unavailable", {}))


def _choose(node: Any, g: Any, device: Any, allocator: Any, config: Any, log: Any, cache: Any, timed: dict,
            batch: int, stats: dict) -> None:
    """The tactic of one node: the only one, the default, a cached or already timed choice, or timed now."""
    op = get_op(node.type)
    specs = [g.tensors[t] for t in node.inputs]
    names = candidate_tactics(op, node.params, specs, device, config, batch, [g.tensors[t] for t in node.outputs])
    if not names:
        return
    if len(names) == 1 or config.tactics == "default":
        node.params, node.weights = op.prepare_tactic(names[0], node.params, node.weights)
        return
    key = signature(device, node.precision, node, g, batch, config.tf32)
    entry = timed.get(key)
    fresh = covers(entry, names)
    if not fresh:
        entry = cache.get(key) if cache is not None else None
    if covers(entry, names) and not fresh:
        stats["hits"] += 1
        stats["saved_ms"] += float(entry.get("timing_ms", 0.0))
        node.params, node.weights = op.prepare_tactic(entry["tactic"], node.params, node.weights)
        node.tactic_times = dict(entry["times_ms"])
        source = f"timed for {entry['layer']!r}" if entry.get("layer") and entry["layer"] != node.name else ""
        log.add("tactic", entry["tactic"], node.name, node.name, len(g.nodes), len(g.nodes), 0.0,
                "from the timing cache" + (f" ({source})" if source else "") + ": "
                + ", ".join(f"{k} {v:.3f} ms" for k, v in entry["times_ms"].items()), "cached")
        return
    if fresh:
        times, spent = dict(entry["times_ms"]), float(entry.get("timing_ms", 0.0))
    else:
        t0 = time.perf_counter()
        try:
            times = time_layer(node.name, op, node.params, node.weights, specs,
                               [g.tensors[t] for t in node.outputs], [g.constants.get(t) for t in node.inputs],
                               names, node.precision, device, allocator, batch, config.tactic_iterations, race=True,
                               tf32=config.tf32)
        except PerfkitError:
            raise
        except Exception as exc:
            raise BuildError(_cannot_run(node, device, exc)) from exc
        spent = (time.perf_counter() - t0) * 1e3
    race = {} if fresh else last_race()
    if fresh:               # timed while choosing the precision: that phase's rows hold the time spent
        stats["reused"] += 1
    else:
        stats["timed_ms"] += spent
        stats["misses"] += 1
    best = min(times, key=times.get)
    n = config.tactic_iterations
    for name, how in race.items():
        if how.startswith("unavailable"):
            log.add("tactic", name, node.name, "", len(g.nodes), len(g.nodes), 0.0, how, "rejected")
    for name, ms in times.items():
        how = race.get(name, f"median of {n} runs at batch {batch}")
        log.add("tactic", name, node.name, node.name if name == best else "", len(g.nodes), len(g.nodes), ms,
                how + ("" if name == best else f"; {ms / times[best]:.2f}x the time of {best}"),
                "chosen" if name == best else "rejected")
    node.params, node.weights = op.prepare_tactic(best, node.params, node.weights)
    node.tactic_times = dict(times)
    if cache is not None and not fresh:
        unavailable = {n: how for n, how in race.items() if how.startswith("unavailable")}
        cache.put(key, {"tactic": best, "times_ms": times, "timing_ms": spent, "layer": node.name,
                        **({"unavailable": unavailable} if unavailable else {})})


def _cannot_run(node: Any, device: Any, exc: Exception) -> str:
    why = f"layer {node.name!r} ({node.type}) cannot run in {node.precision} on {device.spec}: {type(exc).__name__}: {exc}"
    if node.precision == "fp32":
        return why
    return (f"{why}; build it in fp32 (layer_precisions={{{node.name!r}: 'fp32'}}) or without strict_types, "
            f"which keeps layers in fp32 where {node.precision} cannot run")
