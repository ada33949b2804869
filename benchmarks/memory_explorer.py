"""MemoryExplorer on a million allocator events: its first draw and a window change must each take
under 2 s (figure, PNG and the table of the largest blocks).

Usage:  python3 benchmarks/memory_explorer.py [--events 1000000] [--rounds 3] [--profile]

The frame is memory_plot.py's synthetic run (build churn, context creation, inference temporaries
under 50 layers). Times the explorer's construction (its first draw) once, then ``rounds`` window
changes (the slider narrowed to a different middle half each time), in static mode (the PNG is
rendered each time, as in a notebook without ipympl). Prints each time, the median redraw and its
ratio to the 2 s budget. ``--profile`` prints cProfile's top functions of one redraw. A benchmark, not a
test: the machine's load shows in the figure.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memory_plot import synthetic_events  # noqa: E402

from perfkit.widgets import MemoryExplorer  # noqa: E402

BUDGET_S = 2.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    ev = synthetic_events(a.events)
    MemoryExplorer(ev.head(1000), interactive=False)          # warm-up: imports pyplot, ipywidgets
    t = time.perf_counter()
    e = MemoryExplorer(ev, interactive=False)
    first = time.perf_counter() - t
    lo, hi = e.window.value
    times = []
    for k in range(a.rounds):
        start = lo + (hi - lo) * (0.1 + 0.1 * k)
        t = time.perf_counter()
        e.window.value = (start, start + (hi - lo) / 2)
        times.append(time.perf_counter() - t)
    assert len(e.table_frame) == 10, f"the table shows {len(e.table_frame)} blocks, not 10"
    med = float(np.median(times))
    print(f"{len(ev):,} events: first draw {first:.3f} s ({first / BUDGET_S:.2f}x the {BUDGET_S:g} s budget); "
          f"window change median {med:.3f} s over {a.rounds} (each: {', '.join(f'{x:.3f}' for x in times)} s), "
          f"{med / BUDGET_S:.2f}x the budget")
    if a.profile:
        prof = cProfile.Profile()
        prof.enable()
        e.window.value = (lo, hi)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
