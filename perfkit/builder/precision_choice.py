"""Which precision each layer runs in: a reduced precision is allowed, not imposed (guide 2.4).

With ``BuilderConfig(precision="fp16")`` (or ``"bf16"``) each layer may run in fp32 or in the
reduced precision. Layer by layer, in execution order:

1. Forced: a precision set on the layer (``layer.precision`` / ``layer_precisions``), or the
   requested one on every layer under ``strict_types=True``. Weights that the precision cannot
   hold are then an error (:class:`BuildError` naming the layer, the weight and the fixes).
2. fp32 kept without timing: weights beyond the reduced precision's range (they would be stored
   as infinity), a device that cannot store the type (bf16 on a CuPy without bfloat16), or no
   timing at all (``tactics="default"``) on a device that does not declare the precision fast
   (``device.fast_fp16`` / ``fast_bf16``).
3. Timed: the layer runs in each precision with each of its tactics (``tactics.time_layer``: the
   engine's own storage dtypes at the maximum batch). A precision's cost is its fastest tactic
   plus the reformat layers it brings: inputs whose storage dtype (as chosen for their producers)
   differs and that no earlier consumer converts already, and network outputs whose declared dtype
   differs. The precisions are timed alternately in ``ROUNDS`` rounds (the order swapped every round).
   The prior is the requested precision on a device that declares it fast (``fast_fp16`` on CUDA),
   fp32 elsewhere (the CPU); the other precision is taken only when it is cheaper by more than
   ``NOISE`` in a clear majority of the rounds (``MAJORITY``). A burst of load on a shared machine
   slows one or two rounds, not one precision: one planted outlier round does not flip the choice. The
   figures logged and used below are each precision's median over the rounds.

The choice is greedy: a layer takes the earlier layers' choices as given and does not look ahead
at reformats its consumers may need. One second look (``reconsider``) compares the result with all
timed layers in the requested precision, which catches chains of layers that are each slightly
faster in it but lose to the reformats around any one of them (they take it together only when that is
cheaper beyond ``NOISE``). TensorRT searches formats more widely.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ..errors import BuildError, PerfkitError
from ..ops import get_op
from ..ops.base import TensorSpec
from ..precision import FINITE_MAX, STORAGE, convert_weight, is_float, overflow
from . import tactics

NOISE = 0.10        # the reduced precision must be more than 10 % cheaper in a round to win it
ROUNDS = 5          # rounds of alternate timings per layer (fp32, reduced; then reduced, fp32; ...)
MAJORITY = 2 / 3    # the share of rounds the reduced precision must win: 4 of 5


def round_iterations(tactic_iterations: int) -> int:
    """Timed runs per tactic in one round (each round adds one warm-up run): the rounds' runs, warm-ups
    included, stay within the ``2 x (tactic_iterations + 1)`` of two rounds, at least 1 timed run a round,
    so that more rounds cost about the same time."""
    return max(1, 2 * (tactic_iterations + 1) // ROUNDS - 1)


def vote(prior_ms: list, other_ms: list) -> tuple[int, int]:
    """(rounds in which the other precision was cheaper than the prior one by more than ``NOISE``, rounds).
    A precision known from the timing cache has one figure, compared with every round of the other."""
    n = max(len(prior_ms), len(other_ms))
    a, b = ([float(np.median(x))] * n if len(x) < n else x for x in (prior_ms, other_ms))
    return sum(1 for x, y in zip(a, b) if y * (1 + NOISE) < x), n


def choose_precisions(g: Any, device: Any, allocator: Any, config: Any, log: Any, cache: Any) -> tuple[dict, dict]:
    """Sets ``node.precision`` on every node of ``g`` and adds one ``precision`` log row per layer
    (when a choice was possible or forced). Returns the tactic timings made on the way (by
    timing-cache key, for ``choose_tactics``) and totals: ``timed_ms``, ``timed_layers``."""
    chooser = _Chooser(g, device, allocator, config, cache)
    rows = []
    for n in g.nodes:
        t0 = time.perf_counter()
        precision, outcome, detail = chooser.decide(n)
        n.precision = precision
        chooser.record(n)
        rows.append([n, outcome, detail, (time.perf_counter() - t0) * 1e3])
    chooser.reconsider(rows)
    for n, outcome, detail, spent in rows:
        if detail:
            log.add("precision", n.precision, n.name, n.name, len(g.nodes), len(g.nodes), spent, detail, outcome)
    return chooser.timed, chooser.stats


class _Chooser:
    def __init__(self, g: Any, device: Any, allocator: Any, config: Any, cache: Any) -> None:
        self.g, self.device, self.allocator, self.config, self.cache = g, device, allocator, config, cache
        self.requested = config.precision
        self.timed: dict = {}
        self.stats = {"timed_ms": 0.0, "timed_layers": 0}
        # storage dtype of every tensor so far (declared for inputs; constants are converted at build)
        self.current = {t: g.tensors[t].dtype for t in g.inputs}
        self.converted: set = set()          # (tensor, dtype) pairs a reformat already provides
        self._reformat_ms: dict = {}
        self._from_cache: set = set()
        self.layer_ms: dict = {}             # layer -> {precision: ms} for the layers timed in both
        self.figures: dict = {}

    def reconsider(self, rows: list) -> None:
        """A second look at the timed layers as a whole: one by one, a layer between fp32 layers pays
        the reformats around it, so a chain of layers that are each a little faster in the reduced
        precision may all stay fp32. If the timed layers all in the requested precision cost less by more
        than ``NOISE`` (the reformats at the chain's ends included; medians over the rounds) than the
        layer-by-layer choice, they all take it. ``rows``: ``[node, outcome, detail, ms]`` per layer, updated in place."""
        req = self.requested
        switch = [r for r in rows if r[0].name in self.layer_ms and r[0].precision != req]
        if not switch:
            return
        chosen = {n.name: n.precision for n, *_ in rows}
        together = {**chosen, **{name: req for name in self.layer_ms}}
        c_chosen, c_together = self._network_ms(chosen), self._network_ms(together)
        if c_together * (1 + NOISE) >= c_chosen:
            return
        for r in switch:
            r[0].precision = req
            r[2] = (f"{req} allowed; {req} chosen: the timed layers all in {req} take {c_together:.3f} ms, "
                    f"chosen one by one {c_chosen:.3f} ms; this layer alone{self.figures[r[0].name]}")

    def _network_ms(self, assignment: dict) -> float:
        """Timed layers' milliseconds plus every reformat that ``assignment`` (layer -> precision) needs."""
        g, total = self.g, 0.0
        current = {t: g.tensors[t].dtype for t in g.inputs}
        converted: set = set()
        for n in g.nodes:
            p = assignment[n.name]
            dtype = STORAGE[p]
            total += self.layer_ms.get(n.name, {}).get(p, 0.0)
            for t in n.inputs:
                cur = current.get(t)
                if cur is not None and is_float(cur) and cur != dtype and (t, dtype) not in converted:
                    total += self._reformat(g.tensors[t].shape, cur, dtype)
                    converted.add((t, dtype))
            for t in n.outputs:
                declared = g.tensors[t].dtype
                current[t] = dtype if is_float(declared) else declared
                if t in g.outputs and is_float(declared) and declared != dtype:
                    total += self._reformat(g.tensors[t].shape, dtype, declared)
        return total

    # -- the decision ---------------------------------------------------------------------------
    def decide(self, n: Any) -> tuple[str, str, str]:
        req, cfg, dev = self.requested, self.config, self.device
        if n.precision is not None:
            self._refuse_overflow(n, n.precision, "it is set for this layer")
            self._refuse_unstorable(n, n.precision)
            return n.precision, "forced", (f"{n.precision} set for this layer" if n.precision != req or req != "fp32"
                                           else "")
        if req == "fp32":
            return "fp32", "done", ""
        if cfg.strict_types:
            self._refuse_overflow(n, req, "strict_types=True")
            self._refuse_unstorable(n, req)
            return req, "forced", f"{req} strict (strict_types=True)"
        if not self._has_float(n):
            return req, "done", f"{req} allowed; no floating-point data in this layer"
        over = self._overflow(n, req)
        if over:
            what, count, big = over
            return "fp32", "kept", (f"{req} allowed; fp32 kept: {what} has {count} value(s) beyond the {req} range "
                                    f"(largest magnitude {big:.4g} > {FINITE_MAX[req]:.4g})")
        if req == "bf16" and not dev.runs_bf16:
            return "fp32", "kept", f"bf16 allowed; fp32 kept: {dev.spec} cannot run bf16 layers ({dev.bf16_limitation})"
        if cfg.tactics == "default":
            if getattr(dev, f"fast_{req}", False):
                return req, "kept", f"{req} allowed; {req} kept without timing (tactics='default'): " \
                                    f"{dev.spec} declares fast {req}"
            return "fp32", "kept", (f"{req} allowed; fp32 kept without timing (tactics='default'): "
                                    f"{dev.spec} declares no fast {req}")
        return self._timed_choice(n)

    def _timed_choice(self, n: Any) -> tuple[str, str, str]:
        req = self.requested
        self.stats["timed_layers"] += 1
        rounds: dict = {"fp32": [], req: []}
        for r in range(ROUNDS):
            for p in (("fp32", req) if r % 2 == 0 else (req, "fp32")):
                try:
                    ms = self._time(n, p)
                except PerfkitError:
                    raise
                except Exception as exc:   # the reduced precision cannot run here: fp32 it is, and say why
                    if p == "fp32":
                        raise
                    return "fp32", "chosen", (f"{req} allowed; fp32 chosen: {req} failed on {self.device.spec} "
                                              f"({type(exc).__name__}: {exc})")
                if ms is not None:         # None: known from the timing cache, no further round
                    rounds[p].append(ms)
        ref_ms = {p: self._reformats_ms(n, p) for p in rounds}
        cost = {p: [ms + ref_ms[p] for ms in rounds[p]] for p in rounds}
        self.layer_ms[n.name] = {p: float(np.median(rounds[p])) for p in rounds}
        c32, creq = (float(np.median(cost[p])) for p in ("fp32", req))
        parts = [f"{p} {float(np.median(cost[p])):.3f} ms" + (f" incl. {ref_ms[p]:.3f} ms of reformats" if ref_ms[p]
                                                                else "") for p in ("fp32", req)]
        figures = self.figures[n.name] = " (" + ", ".join(parts) + ")"
        # the prior: the requested precision on a device that declares it fast (CUDA's fp16), fp32 elsewhere
        # (the CPU); the other is taken only when it wins beyond noise in a clear majority of the rounds
        prior = req if getattr(self.device, f"fast_{req}", False) else "fp32"
        other = "fp32" if prior == req else req
        wins, total = vote(cost[prior], cost[other])
        need = math.ceil(MAJORITY * total - 1e-9)
        c_prior, c_other = (float(np.median(cost[p])) for p in (prior, other))
        if wins >= need and c_other * (1 + NOISE) < c_prior:
            return other, "chosen", (f"{req} allowed; {other} chosen: {c_prior / c_other:.1f}x faster on this device, "
                                     f"beyond noise in {wins} of {total} round(s){figures}")
        if prior == req:
            return req, "chosen", (f"{req} allowed; {req} chosen: {self.device.spec} declares {req} fast and fp32 was "
                                   f"not faster beyond noise ({NOISE:.0%}) in a majority of {total} round(s){figures}")
        if c_other > c_prior * (1 + NOISE):
            return "fp32", "chosen", f"{req} allowed; fp32 chosen: {c_other / c_prior:.1f}x faster on this device{figures}"
        return "fp32", "kept", (f"{req} allowed; kept fp32: {req} was not faster beyond noise ({NOISE:.0%}) in "
                                f"{total - wins} of {total} round(s) (faster in {wins}, {need} needed){figures}")

    def record(self, n: Any) -> None:
        """Notes the storage dtypes that ``n``'s choice gives its outputs and inputs."""
        dtype = STORAGE[n.precision]
        for t in n.inputs:
            if t in self.current and is_float(self.current[t]) and self.current[t] != dtype:
                self.converted.add((t, dtype))
        for t in n.outputs:
            self.current[t] = dtype if is_float(self.g.tensors[t].dtype) else self.g.tensors[t].dtype

    # -- timing ---------------------------------------------------------------------------------
    def _specs(self, n: Any, p: str) -> tuple[list, list, list, dict]:
        g, dtype = self.g, STORAGE[p]
        ins, consts = [], []
        for t in n.inputs:
            spec = g.tensors[t]
            float_ = is_float(spec.dtype)
            ins.append(TensorSpec(spec.shape, dtype if float_ else spec.dtype, spec.constant))
            consts.append(None if t not in g.constants else
                          convert_weight(g.constants[t], p) if float_ else g.constants[t])
        outs = [TensorSpec(g.tensors[t].shape, dtype if is_float(g.tensors[t].dtype) else g.tensors[t].dtype)
                for t in n.outputs]
        weights = {k: convert_weight(v, p) for k, v in n.weights.items()}
        return ins, outs, consts, weights

    def _time(self, n: Any, p: str) -> float | None:
        """The fastest tactic's milliseconds for ``n`` in precision ``p`` in this round: from the timing
        cache if it knows them (then ``None`` on later rounds), else measured now (each round's own figure,
        so that rounds can outvote each other); the tactic times kept for ``choose_tactics`` are each
        tactic's best over the rounds."""
        op = get_op(n.type)
        ins, outs, consts, weights = self._specs(n, p)
        batch = self.config.max_batch_size
        names = tactics.candidate_tactics(op, n.params, ins, self.device, self.config, batch, outs) or ("",)
        key = tactics.signature_of(self.device, p, n.type, n.params, ins, [c is not None for c in consts], weights,
                                   batch, self.config.tf32)
        earlier = self.timed.get(key)
        if earlier is None:
            entry = self.cache.get(key) if self.cache is not None else None
            if tactics.covers(entry, names):
                if key in self._from_cache:
                    return None
                self._from_cache.add(key)
                return min(float(v) for v in entry["times_ms"].values())
        t0 = time.perf_counter()
        times = tactics.time_layer(n.name, op, n.params, weights, ins, outs, consts, names, p, self.device,
                                   self.allocator, batch, round_iterations(self.config.tactic_iterations),
                                   tf32=self.config.tf32)
        spent = (time.perf_counter() - t0) * 1e3
        self.stats["timed_ms"] += spent
        this_round = min(times.values())
        if earlier is not None:
            times = {k: min(v, earlier["times_ms"].get(k, v)) for k, v in times.items()}
            spent += earlier["timing_ms"]
        best = min(times, key=times.get)
        entry = {"tactic": best, "times_ms": times, "timing_ms": spent, "layer": n.name}
        self.timed[key] = entry
        if self.cache is not None:
            self.cache.put(key, entry)
        return this_round

    def _reformats_ms(self, n: Any, p: str) -> float:
        g, dtype, total = self.g, STORAGE[p], 0.0
        for t in n.inputs:
            cur = self.current.get(t)     # None for constants: converted once at build time
            if cur is not None and is_float(cur) and cur != dtype and (t, dtype) not in self.converted:
                total += self._reformat(g.tensors[t].shape, cur, dtype)
        for t in n.outputs:
            declared = g.tensors[t].dtype
            if t in g.outputs and is_float(declared) and declared != dtype:
                total += self._reformat(g.tensors[t].shape, dtype, declared)
        return total

    def _reformat(self, shape: tuple, src: str, dst: str) -> float:
        """Milliseconds of one dtype conversion of a tensor of ``shape`` at the maximum batch: measured once
        per build, and kept in the timing cache (so that a warm build votes on the same times)."""
        key = (tuple(shape), src, dst)
        sig = None
        if key not in self._reformat_ms and self.cache is not None:
            precision = {v: k for k, v in STORAGE.items()}.get(dst, "fp32")
            sig = tactics.signature_of(self.device, precision, "precision_reformat", {"from": src, "to": dst},
                                       [TensorSpec(shape, src)], [False], {}, self.config.max_batch_size)
            kept = tactics.cached_reformat_ms(self.cache, sig)
            if kept is not None:
                self._reformat_ms[key] = kept
        if key not in self._reformat_ms:
            t0 = time.perf_counter()
            times = tactics.time_layer(f"reformat {src} -> {dst}", get_op("identity"), {"dtype": dst}, {},
                                       [TensorSpec(shape, src)], [TensorSpec(shape, dst)], [None], ("",),
                                       {v: k for k, v in STORAGE.items()}.get(dst, "fp32"), self.device,
                                       self.allocator, self.config.max_batch_size, self.config.tactic_iterations)
            self.stats["timed_ms"] += (time.perf_counter() - t0) * 1e3
            self._reformat_ms[key] = times[""]
            if sig is not None:
                tactics.keep_reformat_ms(self.cache, sig, times[""])
        return self._reformat_ms[key]

    # -- what a precision can hold ----------------------------------------------------------------
    def _has_float(self, n: Any) -> bool:
        g = self.g
        return (any(is_float(g.tensors[t].dtype) for t in list(n.inputs) + list(n.outputs))
                or any(is_float(w.dtype) for w in n.weights.values()))

    def _overflow(self, n: Any, p: str) -> tuple[str, int, float] | None:
        """The first weight (or constant input) of ``n`` with values ``p`` cannot hold."""
        items = [(f"weight {k!r}", w) for k, w in n.weights.items()]
        items += [(f"constant input {t!r}", self.g.constants[t]) for t in n.inputs if t in self.g.constants]
        for what, w in items:
            count, big = overflow(w, p)
            if count:
                return what, count, big
        return None

    def _refuse_overflow(self, n: Any, p: str, because: str) -> None:
        over = self._overflow(n, p)
        if over is None:
            return
        what, count, big = over
        raise BuildError(
            f"layer {n.name!r}: {what} has {count} value(s) beyond the {p} range (largest magnitude {big:.4g}; {p} "
            f"holds up to {FINITE_MAX[p]:.4g}) and would be stored as infinity, and {p} is forced ({because}). "
            f"Rescale the weights or run this layer in fp32 (layer_precisions={{{n.name!r}: 'fp32'}})"
            + ("; or build without strict_types to let the builder keep it in fp32" if "strict" in because else ""))

    def _refuse_unstorable(self, n: Any, p: str) -> None:
        if p == "bf16" and not self.device.runs_bf16:
            raise BuildError(f"layer {n.name!r}: bf16 is forced but {self.device.spec} cannot run bf16 layers "
                             f"({self.device.bf16_limitation}); use precision='fp16', or build without "
                             "strict_types to keep such layers in fp32")
