"""Memory over time on a million allocator events: ``plot_memory`` must draw it in under 2 s.

Usage:  python3 benchmarks/memory_plot.py [--events 1000000] [--rounds 3]

The frame is synthetic, shaped like a profiled run with ``memory="all"``: a build's workspace churn,
context creation (weights, activations, workspace, io), then inference where every layer allocates
and frees temporaries; one planted spike of 64 MiB lies somewhere in the middle. Each round times
``plot_memory`` (default phases: context creation and inference, with the builder's prediction)
plus a full draw of the figure (after one warm-up round that imports pyplot), and checks that the spike is the peak drawn (downsampling keeps
every peak). Prints the median time and its ratio to the 2 s budget. A benchmark, not a test: the
machine's load shows in the figure.
"""
from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from perfkit.plots import plot_memory  # noqa: E402

BUDGET_S = 2.0
SPIKE = 64 * 2**20


def synthetic_events(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` events (an even number): 2,000 of build churn, 4 context allocations, then pairs of
    alloc/free of inference temporaries, each pair under one of 50 layers, and one 64 MiB spike."""
    rng = np.random.default_rng(seed)
    n_build, n_ctx = 2000, 4
    pairs = (n - n_build - n_ctx) // 2
    build = rng.integers(1, 64, n_build // 2) * 2**16
    ctx = np.array([40, 12, 6, 1]) * 2**20
    temp = rng.integers(1, 256, pairs) * 2**12
    temp[pairs // 2] = SPIKE
    size = np.concatenate([np.repeat(build, 2), ctx, np.repeat(temp, 2)])
    action = np.array((["alloc", "free"] * (n_build // 2)) + ["alloc"] * n_ctx + ["alloc", "free"] * pairs)
    tag = np.array(["workspace"] * n_build + ["weights", "activations", "workspace", "io"] + ["user"] * (2 * pairs))
    owner = np.array(["builder"] * n_build + ["engine:net#1"] + ["context:net#1/ctx1"] * 3 + [""] * (2 * pairs))
    layer = np.array([""] * (n_build + n_ctx) + [f"layer_{i % 50:02d}" for i in range(pairs) for _ in (0, 1)])
    ptr = np.concatenate([np.repeat(np.arange(n_build // 2), 2), 10**6 + np.arange(n_ctx),
                          np.repeat(2 * 10**6 + np.arange(pairs), 2)])
    ts = 10**9 + np.cumsum(rng.integers(200, 2000, len(size)))
    sign = np.where(action == "alloc", 1, -1)
    in_use = np.cumsum(size * sign)
    return pd.DataFrame({
        "ts_ns": ts.astype("int64"), "action": pd.array(action, dtype="string"), "ptr": ptr.astype("int64"),
        "size_bytes": size.astype("int64"), "requested_bytes": size.astype("int64"),
        "tag": pd.array(tag, dtype="string"), "owner": pd.array(owner, dtype="string"),
        "layer": pd.array(layer, dtype="string"), "thread": pd.array(["MainThread"] * len(size), dtype="string"),
        "in_use_bytes": in_use.astype("int64"), "peak_bytes": np.maximum.accumulate(in_use).astype("int64")})


def one_round(ev: pd.DataFrame) -> float:
    import matplotlib.pyplot as plt
    t = time.perf_counter()
    fig = plot_memory(ev, predicted_bytes=float(ctx_bytes(ev)))
    fig.canvas.draw()
    elapsed = time.perf_counter() - t
    total = next(line for line in fig.axes[0].lines if line.get_gid() == "total")
    drawn_peak = float(np.max(total.get_ydata()))
    plt.close(fig)
    want = (ctx_bytes(ev) + SPIKE) / 2**20
    assert abs(drawn_peak - want) < 1e-6, f"the drawn peak {drawn_peak} MiB is not the planted {want} MiB"
    return elapsed


def ctx_bytes(ev: pd.DataFrame) -> int:
    return int(ev.loc[ev["owner"] != "builder"].head(4)["size_bytes"].sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    ev = synthetic_events(a.events)
    print(f"{len(ev):,} events, {ev['tag'].nunique()} tags, {ev['layer'].nunique() - 1} layers")
    one_round(ev)                       # warm-up, not counted: the first figure imports pyplot and its backend
    times = [one_round(ev) for _ in range(a.rounds)]
    med = float(np.median(times))
    print(f"plot_memory + draw: median {med:.3f} s over {a.rounds} rounds "
          f"(each: {', '.join(f'{t:.3f}' for t in times)} s); {med / BUDGET_S:.2f}x the {BUDGET_S:g} s budget; "
          "the planted 64 MiB spike is the peak drawn")


if __name__ == "__main__":
    main()
