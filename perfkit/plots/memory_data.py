"""What a memory_events frame says, computed once per frame for every view of it: each event's phase
(build, context creation, inference), the bytes held per tag after each event, the runs of one running
layer, and the blocks (an allocation paired with its free). plot_memory, top_allocations and the
MemoryExplorer draw from a :class:`MemoryData`; the explorer keeps one for all its redraws."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..arguments import frame as check_frame, integer, number, one_of
from ..errors import ArgumentError

PHASES = ("build", "context creation", "inference")
DEFAULT_PHASES = ("context creation", "inference")
COLUMNS = ("ts_ns", "action", "size_bytes", "tag", "owner", "layer", "in_use_bytes")
TAG_ORDER = ("weights", "activations", "workspace", "io", "user")
BEFORE = "held before the frame"


def events_arg(memory_events: Any, what: str) -> pd.DataFrame:
    return check_frame(memory_events, f"{what}: memory_events (a memory_events frame: TrackingAllocator.events "
                                      "or run.memory)", COLUMNS)


def layer_times_arg(layer_times: Any, what: str) -> Any:
    if layer_times is None:
        return None
    return check_frame(layer_times, f"{what}: layer_times (run.layers, or None)", ("start_ns", "end_ns", "layer"))


def phases_arg(phases: Any, what: str) -> tuple:
    items = [phases] if isinstance(phases, str) else phases
    if not isinstance(items, (list, tuple, set, frozenset)) or not items:
        raise ArgumentError(f"{what}: phases must be a non-empty list of {', '.join(map(repr, PHASES))}, "
                            f"not {phases!r}")
    return tuple(p for p in PHASES if p in {one_of(p, PHASES, f"{what}: phases item") for p in items})


def window_arg(window_ms: Any, what: str) -> Any:
    if window_ms is None:
        return None
    if not isinstance(window_ms, (list, tuple)) or len(window_ms) != 2:
        raise ArgumentError(f"{what}: window_ms must be (start_ms, end_ms) or None, not {window_ms!r}")
    lo = number(window_ms[0], f"{what}: window_ms start")
    hi = number(window_ms[1], f"{what}: window_ms end")
    if hi <= lo:
        raise ArgumentError(f"{what}: window_ms ends at {hi:g} ms, not after its start {lo:g} ms; give (start, end)")
    return lo, hi


def tags_arg(tags: Any, what: str) -> Any:
    if tags is None:
        return None
    items = [tags] if isinstance(tags, str) else tags
    if not isinstance(items, (list, tuple, set, frozenset)) or not items or \
            not all(isinstance(t, str) and t for t in items):
        raise ArgumentError(f"{what}: tags must be None (every tag) or a non-empty list of tag names such as "
                            f"['weights', 'activations'], not {tags!r}")
    return tuple(sorted(items))


def t0_arg(t0_ns: Any, what: str) -> Any:
    return None if t0_ns is None else \
        integer(t0_ns, f"{what}: t0_ns (the perf_counter_ns that is 0 ms on the x axis, or None)")


class MemoryData:
    """A memory_events frame sorted by time (``ev``), with ``ts`` (ns), ``phase`` (index into PHASES per
    event) and, computed on first use and kept, the levels per tag, the layer runs and the blocks."""

    def __init__(self, events: pd.DataFrame, layer_times: Any = None):
        self.frame, self.lt = events, layer_times
        sort = not events["ts_ns"].is_monotonic_increasing
        self.order = np.argsort(events["ts_ns"].to_numpy(), kind="stable") if sort else None
        ev = events.iloc[self.order] if sort else events
        self.ev = ev
        self.ts = ev["ts_ns"].to_numpy()
        self.layer_codes, layers = pd.factorize(ev["layer"].fillna(""))
        self.layer_names = np.asarray(layers, dtype=object)
        named = (self.layer_names != "")[self.layer_codes] if len(ev) else np.zeros(0, bool)
        self.phase = _phase_codes(self.ts, named, (ev["owner"].fillna("") == "builder").to_numpy(), layer_times)
        action = ev["action"].to_numpy()
        self.delta = ev["size_bytes"].to_numpy() * ((action == "alloc").astype(np.int64) - (action == "free"))
        self.tag_codes, uniq = pd.factorize(ev["tag"].fillna(""))
        self.tags = [str(t) for t in uniq]
        self._cache: dict = {}

    def first_ns(self) -> int:
        return int(self.ts[0]) if len(self.ts) else 0

    def span_ns(self, phases: tuple) -> Any:
        """(first, last) ns of the events of ``phases`` (and the layer times when inference is one), or None."""
        ts = self.ts[np.isin(self.phase, [PHASES.index(p) for p in phases])]
        ends = [ts.min(), ts.max()] if len(ts) else []
        lt = self.lt
        if lt is not None and len(lt) and "inference" in phases:
            ends += [lt["start_ns"].min(), lt["end_ns"].max()]
        return (int(min(ends)), int(max(ends))) if ends else None

    def levels(self, build: bool, tags: Any, by_tag: bool) -> tuple:
        """(levels, names): bytes held per band (int64, a row before the first event and one after each,
        a column per band) and the band names, bottom first; the builder's blocks count when ``build``.
        A frame that starts while blocks are live (run.memory) gets a band for what was held before it,
        so that the top of the stack is the allocator's ``in_use_bytes``."""
        key = (build, tags, by_tag)
        if self._cache.get("levels_key") != key:         # one kept: (events + 1) x bands int64 is large
            self._cache["levels"], self._cache["levels_key"] = self._levels(build, tags, by_tag), key
        return self._cache["levels"]

    def _levels(self, build: bool, tags: Any, by_tag: bool) -> tuple:
        counted = (self.phase != 0) | build
        names = sorted(self.tags, key=lambda t: (TAG_ORDER.index(t) if t in TAG_ORDER else len(TAG_ORDER), t))
        keep = [t for t in names if tags is None or t in tags]
        levels = np.zeros((len(self.ts) + 1, len(keep)), dtype=np.int64)
        rows = np.flatnonzero(counted)
        codes = self.tag_codes[rows]
        for j, t in enumerate(keep):
            mine = rows[codes == self.tags.index(t)]
            levels[mine + 1, j] = self.delta[mine]
        levels = np.cumsum(levels, axis=0)
        levels -= np.minimum(levels.min(axis=0), 0)     # a tag freed below zero held that much before the frame
        if tags is None and len(self.ts) and counted.all():
            before = int(self.ev["in_use_bytes"].iloc[0] - self.delta[0]) - int(levels[0].sum())
            if before > 0:
                levels, keep = np.column_stack([np.full(len(levels), before, np.int64), levels]), [BEFORE, *keep]
        if not by_tag and keep:
            levels, keep = levels.sum(axis=1, keepdims=True), ["all tags" if tags is None else " + ".join(keep)]
        return levels, keep

    def layer_runs(self, i0: int, i1: int) -> tuple:
        """(start ns, end ns, layer name) of each run of events i0..i1-1 under one named running layer."""
        if "runs" not in self._cache:
            c = self.layer_codes
            first = np.flatnonzero(np.r_[True, c[1:] != c[:-1]]) if len(c) else np.zeros(0, np.int64)
            last = np.r_[first[1:] - 1, len(c) - 1] if len(c) else first
            named = self.layer_names[c[first]] != "" if len(c) else np.zeros(0, bool)
            self._cache["runs"] = first[named], last[named]
        first, last = self._cache["runs"]
        pick = (last >= i0) & (first < i1)
        a, b = np.maximum(first[pick], i0), np.minimum(last[pick], i1 - 1)
        return self.ts[a], self.ts[b], self.layer_names[self.layer_codes[a]]

    def blocks(self) -> pd.DataFrame:
        """Each allocation with the free that ended it (by pointer, the next free of it): alloc_ns,
        free_ns (NaN: still held at the end), size, requested size, tag, owner, layer, phase."""
        if "blocks" not in self._cache:
            ev = self.ev
            pos = np.arange(len(ev))
            is_alloc = (ev["action"] == "alloc").to_numpy()
            is_free = (ev["action"] == "free").to_numpy()
            allocs = pd.DataFrame({"ptr": ev["ptr"].to_numpy()[is_alloc], "pos": pos[is_alloc]})
            frees = pd.DataFrame({"ptr": ev["ptr"].to_numpy()[is_free], "free_pos": pos[is_free],
                                  "free_ns": self.ts[is_free]})
            pairs = pd.merge_asof(allocs, frees, left_on="pos", right_on="free_pos", by="ptr", direction="forward",
                                  allow_exact_matches=False)
            rows = pairs["pos"].to_numpy()
            out = pd.DataFrame({"alloc_ns": self.ts[rows], "free_ns": pairs["free_ns"].to_numpy(dtype=float)})
            for c in ("size_bytes", "requested_bytes", "tag", "owner", "layer"):
                out[c] = ev[c].to_numpy()[rows]
            out["phase"] = np.asarray(PHASES, dtype=object)[self.phase[rows]]
            self._cache["blocks"] = out.sort_values(["size_bytes", "alloc_ns"], ascending=[False, True],
                                                    kind="stable").reset_index(drop=True)
        return self._cache["blocks"]


def _phase_codes(ts: np.ndarray, named: np.ndarray, build: np.ndarray, lt: Any) -> np.ndarray:
    """Index into PHASES of each event's phase."""
    firsts = [ts[named].min()] if named.any() else []
    if lt is not None and len(lt):
        firsts.append(lt["start_ns"].min())
    inference = named | (ts >= min(firsts)) if firsts else named
    return np.where(build, 0, np.where(inference, 2, 1)).astype(np.int8)


def memory_phases(memory_events: pd.DataFrame, layer_times: Any = None) -> pd.Series:
    """The phase of each event, indexed like the frame (a categorical of :data:`PHASES`): ``'build'``
    (owner ``builder``), ``'inference'`` (an event with its running layer set, or any event from the
    first inference on: the first such event, or the first layer start of ``layer_times``) or
    ``'context creation'`` (the engine's and contexts' allocations before that)."""
    ev = events_arg(memory_events, "memory_phases")
    d = MemoryData(ev, layer_times_arg(layer_times, "memory_phases"))
    codes = d.phase
    if d.order is not None:                          # back to the frame's own order
        codes = np.empty_like(d.phase)
        codes[d.order] = d.phase
    return pd.Series(pd.Categorical.from_codes(codes, categories=PHASES), index=ev.index, name="phase")


def memory_time_range(memory_events: pd.DataFrame, phases: Any = DEFAULT_PHASES, layer_times: Any = None,
                      t0_ns: Any = None) -> tuple:
    """(start_ms, end_ms): the span that :func:`plot_memory` shows for ``phases`` (x in ms since ``t0_ns``,
    by default the start of the span itself): from the first to the last event of those phases, and over the
    layer times too when ``'inference'`` is one of them. (0.0, 0.0) when nothing falls in those phases."""
    what = "memory_time_range"
    ev = events_arg(memory_events, what)
    phases = phases_arg(phases, what)
    t0 = t0_arg(t0_ns, what)
    return time_range(MemoryData(ev, layer_times_arg(layer_times, what)), phases, t0)


def time_range(data: MemoryData, phases: tuple, t0: Any) -> tuple:
    span = data.span_ns(phases)
    if span is None:
        return (0.0, 0.0)
    t0 = span[0] if t0 is None else t0
    return ((span[0] - t0) / 1e6, (span[1] - t0) / 1e6)
