"""Do two measurements at once on one host disturb each other? (issue 13: a sweep over two GPUs runs two.)

Usage:  python3 benchmarks/host_interference.py [--cpu-only] [--repeats 3] [--min-time 0.5]

A distributed sweep times one configuration on each GPU at the same moment, in two processes on one host.
Where rows of a two-GPU sweep differ from the one-GPU sweep by more than their intervals, this script asks
whether the host alone explains it, without Dask or any of perfkit's distributed machinery:

1. CPU: a pure-Python loop in N processes at once, each pinned to its own core (os.sched_setaffinity) and
   started together (a barrier), each against the same loop alone on its own core; then the first core beside
   each other core in turn. On a machine whose cores are independent every ratio is about 1.00; cores that share
   a physical core (hyper-threads, or a virtual machine's vCPUs on one physical core) or a power budget show
   above 1.
2. GPU (skipped with --cpu-only or without two CUDA GPUs): the same small sweep (``pk.sweep`` in a fresh
   process on one GPU: a host-bound MLP, LeNet, a small ResNet and a transformer encoder) alone on cuda:0, and
   on cuda:0 while the same sweep runs on cuda:1 in another process; alternating, ``--repeats`` times each. It
   prints, per configuration, the median of the alone runs against the median of the concurrent ones, and how
   often the intervals of two alone runs overlap (the run-to-run agreement the intervals can be held to).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CONFIGS = [("mnist_mlp", "fp16", 8), ("mnist_mlp", "bf16", 1), ("lenet", "fp16", 256), ("lenet", "fp32", 8),
           ("resnet_small", "fp32", 256), ("resnet_small", "fp16", 32), ("transformer_encoder", "fp16", 1),
           ("transformer_encoder", "fp16", 256)]


def _spin(n: int = 3_000_000) -> float:
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i & 7
    return time.perf_counter() - t0


def _spin_child(core: int, barrier, out) -> None:
    os.sched_setaffinity(0, {core})
    _spin(300_000)                               # warm: the interpreter's caches, the core's clock
    barrier.wait()                               # every process starts its timed loops at the same moment
    out.send(float(np.median([_spin() for _ in range(5)])))


def _together(cores: list) -> list:
    """Each core's median loop time (s) with all of ``cores`` busy at once, one pinned process each."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(len(cores))
    pipes, procs = [], []
    for c in cores:
        a, b = ctx.Pipe()
        p = ctx.Process(target=_spin_child, args=(c, barrier, b))
        p.start()
        pipes.append(a)
        procs.append(p)
    got = [a.recv() for a in pipes]
    for p in procs:
        p.join()
    return got


def cpu_part() -> None:
    cores = sorted(os.sched_getaffinity(0))
    alone = {c: float(np.median([_together([c])[0] for _ in range(3)])) for c in cores}
    first = cores[0]
    print(f"# CPU: {len(cores)} cores in this process's affinity; a pure-Python loop alone: median "
          f"{np.median(list(alone.values())) * 1e3:.0f} ms over the cores ({min(alone.values()) * 1e3:.0f}-"
          f"{max(alone.values()) * 1e3:.0f} ms); each figure below is a process's time against its own core alone")
    sizes = sorted({n for n in (2, 4, 8, 16) if n < len(cores)} | {len(cores)})
    for n in sizes:
        if n < 2:
            continue
        r = [t / alone[c] for t, c in zip(_together(cores[:n]), cores[:n])]
        print(f"  {n:3d} processes at once on cores {cores[0]}-{cores[n - 1]}: per process median "
              f"{np.median(r):.3f}x alone, slowest {max(r):.3f}x")
    pairs = []
    for c in cores[1:]:
        ratios = [[t / alone[k] for t, k in zip(_together([first, c]), (first, c))] for _ in range(2)]
        pairs.append((float(np.median(ratios)), c))           # both processes, two repeats
    pairs.sort(reverse=True)
    if pairs:
        print(f"  core {first} with one other core (median of both processes, two repeats): "
              + ", ".join(f"core {c} {r:.3f}x" for r, c in pairs[:6])
              + f" ... median {np.median([r for r, _ in pairs]):.3f}x, least {pairs[-1][0]:.3f}x (core {pairs[-1][1]})")


def _child(device: str, min_time: float) -> None:
    import perfkit as pk
    nets = {m: pk.models.SAMPLES[m]() for m in sorted({c[0] for c in CONFIGS})}
    rows = []
    for m, p, b in CONFIGS:
        f = pk.sweep([nets[m]], batch_sizes=[b], precisions=[p], device=device, min_time_s=min_time, progress=False)
        r = f.iloc[0]
        rows.append({"model": m, "precision": p, "batch_size": b, "median": float(r["latency_median_ms"]),
                     "low": float(r["latency_ci_low_ms"]), "high": float(r["latency_ci_high_ms"]),
                     "build_ms": float(r["build_time_ms"]), "other_busy": float(r.get("host_other_busy_cores", np.nan))})
    print("ROWS " + json.dumps(rows), flush=True)


def _launch(device: str, min_time: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", device, "--min-time", str(min_time)],
                            stdout=subprocess.PIPE, text=True)


def _rows(p: subprocess.Popen) -> list:
    out, _ = p.communicate()
    if p.returncode:
        raise SystemExit(f"child failed ({p.returncode})")
    return json.loads(next(line for line in out.splitlines() if line.startswith("ROWS "))[5:])


def gpu_part(repeats: int, min_time: float) -> None:
    alone, together = [], []
    for i in range(repeats):
        for mode in (("alone", "together") if i % 2 == 0 else ("together", "alone")):
            t0 = time.perf_counter()
            if mode == "alone":
                alone.append(_rows(_launch("cuda:0", min_time)))
            else:
                a, b = _launch("cuda:0", min_time), _launch("cuda:1", min_time)
                try:
                    together.append(_rows(a))
                    _rows(b)
                finally:
                    if b.poll() is None:
                        b.kill()
            print(f"  run {mode:8s} {time.perf_counter() - t0:5.1f} s", flush=True)
    print(f"\n# GPU: cuda:0 alone ({len(alone)} runs) against cuda:0 while cuda:1 runs the same ({len(together)});"
          " medians over runs, ms")
    print(f"{'configuration':34s} {'alone':>9s} {'together':>9s} {'ratio':>6s}  {'alone runs, spread':>18s}  "
          "builds alone/together  other busy cores alone/together")
    for k, (m, p, b) in enumerate(CONFIGS):
        al = np.array([r[k]["median"] for r in alone])
        tg = np.array([r[k]["median"] for r in together])
        ba = np.median([r[k]["build_ms"] for r in alone])
        bt = np.median([r[k]["build_ms"] for r in together])
        spread = (al.max() - al.min()) / np.median(al) * 100
        oa = np.nanmedian([r[k]["other_busy"] for r in alone])
        ot = np.nanmedian([r[k]["other_busy"] for r in together])
        print(f"{m + ' ' + p + ' b' + str(b):34s} {np.median(al):9.4f} {np.median(tg):9.4f} "
              f"{np.median(tg) / np.median(al):6.3f}  {spread:16.1f} %  {ba / 1e3:.2f} / {bt / 1e3:.2f} s"
              f"{oa:17.1f} / {ot:.1f}")
    pairs = agree = 0
    for i in range(len(alone)):
        for j in range(i + 1, len(alone)):
            for x, y in zip(alone[i], alone[j]):
                pairs += 1
                agree += x["low"] <= y["high"] and y["low"] <= x["high"]
    print(f"alone against alone (every pair of runs): {agree} of {pairs} configurations' intervals overlap")
    pairs = agree = 0
    for x_run in alone:
        for y_run in together:
            for x, y in zip(x_run, y_run):
                pairs += 1
                agree += x["low"] <= y["high"] and y["low"] <= x["high"]
    print(f"alone against together: {agree} of {pairs} overlap")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-only", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return _child(a.child, a.min_time)
    cpu_part()
    if a.cpu_only:
        return
    from perfkit.device.cuda import cuda_device_count
    if cuda_device_count() < 2:
        print("# GPU part skipped: fewer than two CUDA GPUs")
        return
    gpu_part(a.repeats, a.min_time)


if __name__ == "__main__":
    main()
