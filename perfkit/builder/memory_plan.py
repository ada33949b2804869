"""Activation memory plan: tensors whose lifetimes do not overlap share bytes of one arena.

Each activation tensor lives from the step that writes it to the last step that reads it. Tensors
are placed largest first at the lowest offset that overlaps no placed tensor alive at the same
time (the greedy-by-size strategy of mobile inference runtimes); the arena is the highest end.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..device.memory import align


@dataclass
class Placement:
    name: str
    offset: int
    nbytes: int
    first: int
    last: int


def plan_arena(lifetimes: dict, sizes: dict) -> tuple[dict, int]:
    """``lifetimes``: name -> (first step, last step); ``sizes``: name -> bytes. Returns offsets, arena bytes."""
    placed: list[Placement] = []
    order = sorted(lifetimes, key=lambda n: (-sizes[n], lifetimes[n][0], n))
    for name in order:
        first, last = lifetimes[name]
        size = align(sizes[name])
        busy = sorted((p.offset, p.offset + align(p.nbytes)) for p in placed
                      if not (p.last < first or last < p.first))
        offset = 0
        for lo, hi in busy:
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        placed.append(Placement(name, offset, size, first, last))
    arena = max((p.offset + p.nbytes for p in placed), default=0)
    return {p.name: p.offset for p in placed}, arena


def lifetimes_of(steps: list, arena_tensors: set) -> dict:
    """First write and last read (step indices) of every arena tensor."""
    life: dict = {}
    for i, s in enumerate(steps):
        for t in s.outputs:
            if t in arena_tensors:
                life.setdefault(t, [i, i])
        for t in s.inputs:
            if t in life:
                life[t][1] = max(life[t][1], i)
    return {k: tuple(v) for k, v in life.items()}
